"""Every bundle's multi_gpu_evaluate.json and multi_gpu_inference.json under torchrun with two CPU (Gloo) ranks, on
folders of an odd number of images: each rank takes its own images (none twice, none left out), the outputs, the
evaluation report, its panels and plot are those of a single-process run of the same configs, the process group
is gone after each run, and a rerun after a lost output redoes exactly its input, on one rank while the other has
nothing to do.

All runs share one torchrun launch (``tests.support.bundle_runs``: each workflow as ``python -m monai.bundle run``
runs it, one after the other): first the single-process runs, before any process group, one bundle on each rank,
then the two-rank runs, on seeded untrained weights (the comparison needs identical models, not good ones).
"""

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common.data.synthetic import write_dataset
from tests.support.bundles import BUNDLES, SUPPORT_ENV, attach_config, free_port, load_spec, save_untrained_weights

# synthetic images and evaluation overrides giving odd numbers (3 or more) of images to evaluate and to infer
CASES = {
    "adipocyte_fluorescence_prediction": {"n": 15, "evaluate": {"eval_split": "training"}},  # 3 evaluated, 5 inferred
    "dsb_nuclei_watershed_segmentation": {"n": 11, "size": 64},  # 3, 11
    "livecell_semantic_segmentation": {"n": 9},  # 3, 3
    "lmc_fluorescence_prediction": {"n": 3},  # 3 slices, 5 images
    "mediar_cell_segmentation": {"n": 3},  # 3, 3
}
RANKS = 2
pytestmark = pytest.mark.xdist_group("multi_gpu_collections")  # one worker runs the shared launch
OME_UUID = re.compile(rb'UUID="urn:uuid:[0-9a-f-]{36}"')
LOST = 1  # outputs deleted before the second two-rank inference: its rank 1 gets no input
# bundles whose inference is run again after that: flat outputs (DSB) and outputs in sub-folders (adipocyte)
RERUN = ("adipocyte_fluorescence_prediction", "dsb_nuclei_watershed_segmentation")


def _recorder(folder: Path, name: str, engine: str) -> str:
    """An override file recording, per rank, the inputs ``engine`` processed, under ``folder/sources/name``."""
    handler = {"_target_": "tests.support.recording.SourceRecorder", "output_dir": str(folder / "sources" / name)}
    return attach_config(folder / f"record_{name}.json", engine, "source_recorder", handler)


def _run(bundle: Path, run_id: str, config_names: list, overrides: dict) -> dict:
    return {"bundle": str(bundle), "run_id": run_id, "config_names": config_names, "overrides": overrides}


def _bundle_steps(bundle: Path, spec: dict, folder: Path) -> tuple[list, list]:
    """The single-process and the two-rank steps of one bundle, on its synthetic data under ``folder``."""
    case = CASES[bundle.name]
    synthetic = {**spec["synthetic"], "n": case["n"], "size": case.get("size", spec["synthetic"]["size"])}
    dataset = write_dataset(synthetic.pop("layout"), folder / "data", **synthetic)
    root = folder / "root"
    save_untrained_weights(
        bundle, root, spec.get("inference_overrides", {}), spec["outputs"].get("model", "models/model.pt")
    )
    evaluate = {**spec["overrides"], **spec.get("evaluate_overrides", {}), **case.get("evaluate", {})}
    evaluate.update(dataset_dir=str(dataset), bundle_root=str(root))
    infer = {**spec.get("inference_overrides", {}), "dataset_dir": str(dataset / spec["inference_input"])}
    infer["bundle_root"] = str(root)
    single = [
        _run(bundle, "evaluating", ["train.json", "evaluate.json"], {**evaluate, "output_dir": str(folder / "single")}),
        _run(bundle, "inferring", ["inference.json"], {**infer, "output_dir": str(folder / "single" / "pred")}),
    ]
    pred = folder / "multi" / "pred"
    multi_infer = {**infer, "output_dir": str(pred)}
    multi = [
        _run(
            bundle,
            "evaluating",
            [
                "train.json",
                "evaluate.json",
                "multi_gpu_evaluate.json",
                _recorder(folder, "evaluate", "validate#evaluator"),
            ],
            {**evaluate, "output_dir": str(folder / "multi")},
        ),
        _run(
            bundle,
            "inferring",
            ["inference.json", "multi_gpu_inference.json", _recorder(folder, "infer", "evaluator")],
            multi_infer,
        ),
    ]
    if bundle.name not in RERUN:
        return single, multi
    multi += [
        {
            "remove": str(pred),
            "pattern": spec["outputs"]["inference_glob"],
            "count": LOST,
            "record": str(folder / "lost.json"),
        },
        _run(
            bundle,
            "inferring",
            ["inference.json", "multi_gpu_inference.json", _recorder(folder, "rerun", "evaluator")],
            multi_infer,
        ),
    ]
    return single, multi


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """``{"work": folder, "records": [rank 0's, rank 1's step records]}``; ``work/<bundle>`` holds ``single/`` and
    ``multi/`` (report, panels, plot; ``pred/``: inference), ``sources/`` and ``lost.json``."""
    work = tmp_path_factory.mktemp("collections")
    single, multi = [], []
    for index, bundle in enumerate(BUNDLES):
        one, two = _bundle_steps(bundle, load_spec(bundle), work / bundle.name)
        single += [{**step, "rank": index % RANKS} for step in one]  # before any process group, side by side
        multi += two
    plan = work / "plan.json"
    plan.write_text(json.dumps({"runs": single + multi, "record": str(work / "record")}))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={RANKS}",
        f"--master_port={free_port()}",
    ]
    command += ["-m", "tests.support.bundle_runs", str(plan)]
    process = subprocess.Popen(
        command, env=SUPPORT_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output = process.communicate(timeout=600)[0]
    finally:
        if process.poll() is None:  # timed out: torchrun's workers go with it
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 0, output[-8000:]
    records = [json.loads((work / f"record.rank{rank}.json").read_text()) for rank in range(RANKS)]
    return {"work": work, "records": records}


@pytest.fixture(params=[bundle.name for bundle in BUNDLES])
def case(request, runs) -> dict:
    folder = runs["work"] / request.param
    spec = load_spec(next(bundle for bundle in BUNDLES if bundle.name == request.param))
    return {"folder": folder, "spec": spec}


def _files(folder: Path, pattern: str = "**/*") -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.glob(pattern)) if p.is_file()}


def _log(path: Path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _same_numbers(got, expected, where: str = "") -> None:
    """Equal structure and values; floats to 1e-9 (relative and absolute), NaN equal to NaN."""
    assert type(got) is type(expected) or {type(got), type(expected)} <= {int, float}, where
    if isinstance(expected, dict):
        assert list(got) == list(expected), where
        for key in expected:
            _same_numbers(got[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), where
        for index, (a, b) in enumerate(zip(got, expected)):
            _same_numbers(a, b, f"{where}/{index}")
    elif isinstance(expected, float):
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(got) and math.isnan(expected)), (
            f"{where}: {got} != {expected}"
        )
    else:
        assert got == expected, where


def test_each_rank_takes_its_own_images(case):
    """Evaluation and inference: rank r processed the r-th, (r+2)-th, ... image, an odd number in all."""
    sources = case["folder"] / "sources"
    for run in ("evaluate", "infer"):
        ranks = [json.loads((sources / run / f"rank{rank}.json").read_text()) for rank in range(RANKS)]
        everything = [source for rank in ranks for source in rank]
        assert len(everything) % 2 == 1 and len(everything) >= 3, (run, everything)
        assert len(set(everything)) == len(everything)  # none twice
        assert [len(rank) for rank in ranks] == [(len(everything) + 1) // 2, len(everything) // 2], run
    inputs = {row["input"] for row in _log(case["folder"] / "single" / "pred" / "inference_log.csv")}
    assert {
        s for rank in range(RANKS) for s in json.loads((sources / "infer" / f"rank{rank}.json").read_text())
    } == inputs


def test_evaluation_report_panels_and_plot_equal_a_single_process_run(case):
    """The CSV, the panels and the plot byte for byte; the JSON summary to 1e-9 (pooled sums add up in another
    order); written once (rank 0): no file beyond the single-process run's."""
    single, multi = case["folder"] / "single", case["folder"] / "multi"
    got, expected = _files(multi, "*"), _files(single, "*")
    assert list(got) == list(expected)
    assert {Path(name).suffix for name in expected} == {".csv", ".json", ".png"}  # report, summary, plot
    for name in expected:
        if name.endswith(".json"):
            summary = json.loads(expected[name])
            _same_numbers(json.loads(got[name]), summary)
            assert summary["images"] % 2 == 1 and summary["images"] >= 3
        else:
            assert got[name] == expected[name], name
    panels = _files(single, "panels*/*.png")
    assert _files(multi, "panels*/*") == panels and len(panels) == 3


def test_inference_outputs_equal_a_single_process_run(case):
    """Every output byte for byte as in the single-process run (after the rerun, where there is one); one merged
    inference_log.csv (no rank logs left) whose last line per input is ``done`` with the single run's outputs."""
    single, multi = case["folder"] / "single" / "pred", case["folder"] / "multi" / "pred"
    got, expected = _files(multi), _files(single)
    assert sorted(got) == sorted(expected)
    for name in expected:
        if name != "inference_log.csv":  # OME-TIFFs name themselves by a new UUID each time they are written
            assert OME_UUID.sub(b"", got[name]) == OME_UUID.sub(b"", expected[name]), name
    single_log, multi_log = _log(single / "inference_log.csv"), _log(multi / "inference_log.csv")
    assert {row["input"]: row for row in multi_log} == {row["input"]: row for row in single_log}


@pytest.mark.parametrize("name", RERUN)
def test_a_rerun_redoes_only_the_inputs_of_lost_outputs(runs, name):
    """The second two-rank inference, after an output was deleted, processed exactly its input (rank 0; rank 1 had
    nothing to do) and added one line to the merged log."""
    folder = runs["work"] / name
    single_log, multi_log = (
        _log(folder / "single" / "pred" / "inference_log.csv"),
        _log(folder / "multi" / "pred" / "inference_log.csv"),
    )
    lost = json.loads((folder / "lost.json").read_text())
    assert len(lost) == LOST
    lost_inputs = {row["input"] for row in single_log if set(row["outputs"].split(";")) & set(lost)}
    rerun = folder / "sources" / "rerun"
    redone = [s for path in sorted(rerun.glob("rank*.json")) for s in json.loads(path.read_text())]
    assert sorted(redone) == sorted(lost_inputs) and redone and not (rerun / "rank1.json").exists()
    assert len(multi_log) == len(single_log) + len(lost_inputs)  # first run's lines, then the rerun's


def test_process_group_is_destroyed_after_every_run(runs):
    for record in runs["records"]:
        assert [step["process_group_left"] for step in record] == [False] * len(record)
