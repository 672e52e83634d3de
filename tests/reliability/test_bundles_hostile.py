"""Hostile but fair use of every bundle through its CLI: bad files, earlier runs' files, broken checkpoints,
kills and tampered releases. Each case asserts the exact outcome: the error and the file it names, the files left.

Runs are tiny (the bundle suite's spec overrides) and most fail within seconds, before any training step.
"""

import csv
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from common.bundle.verify import BundleCheckError, check_weights
from common.io import build_datalist, image_suffix, read_image, write_image
from tests.support.bundles import (
    CLI_ENV,
    assert_same_outputs,
    cli,
    cli_command,
    deploy_app,
    needs_deploy,
    parser_for,
    run_cli,
)

#: datalist key of a file paired with the image (label or target), per layout; None: no such file (COCO polygons)
PARTNER = {
    "bbbc039": "label",
    "dsb2018": "label",
    "neurips": "label",
    "livecell": None,
    "lmc": "targets",
    "adipocyte": "C01",
}
#: files of an inference input folder that inference reads, per layout (default: every image but labels)
READ_BY_INFERENCE = {"adipocyte": "20x_images/*Z01C04.tif"}  # brightfield planes of the magnification with a model
#: datalist key of the input image(s), per layout
INPUT = {
    "bbbc039": "image",
    "dsb2018": "image",
    "neurips": "image",
    "livecell": "image",
    "lmc": "inputs",
    "adipocyte": "brightfield",
}


def _files(value) -> list[str]:
    values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
    return [str(v) for v in values]


def _copy(dataset: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(dataset, tmp_path / dataset.name))


def _training(spec, data: Path, root: Path, **more) -> dict:
    return {**spec["overrides"], "dataset_dir": str(data), "bundle_root": str(root), **more}


def _checkpoint_prefix(bundle, spec) -> str:
    parser = parser_for(bundle, "train.json")
    parser.update(spec["overrides"])
    return parser.get_parsed_content("train#checkpoint#prefix")


def test_training_refuses_to_replace_an_earlier_model(bundle, spec, dataset, tmp_path):
    model = tmp_path / spec["outputs"].get("model", "models/model.pt")
    model.parent.mkdir(parents=True)
    model.write_bytes(b"the user's model")
    status, output = cli(bundle, "training", ["train.json"], _training(spec, dataset, tmp_path))
    assert status != 0 and "written by an earlier run" in output and str(model) in output, output[-3000:]
    assert "--resume True" in output and "--overwrite True" in output
    assert model.read_bytes() == b"the user's model"


def test_resume_from_an_empty_checkpoint_names_it(bundle, spec, dataset, tmp_path):
    broken = tmp_path / "models" / f"{_checkpoint_prefix(bundle, spec)}_epoch=1.pt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"")
    status, output = cli(bundle, "training", ["train.json"], _training(spec, dataset, tmp_path, resume=True))
    assert status != 0 and "no checkpoint to resume from can be read" in output and str(broken) in output, output[
        -3000:
    ]


def test_nonfinite_training_image_is_refused_naming_it(bundle, spec, dataset, tmp_path):
    data = _copy(dataset, tmp_path)
    layout = spec["synthetic"]["layout"]
    corrupted = []
    for item in build_datalist(layout, str(data)):
        for path in _files(item[INPUT[layout]]):
            if image_suffix(path) not in (".tif", ".tiff", ".ome.tif", ".ome.tiff"):
                continue
            pixels = read_image(path).astype(np.float32)
            pixels.flat[pixels.size // 2] = np.nan
            Path(path).unlink()
            write_image(path, pixels)
            corrupted.append(path)
    if not corrupted:
        pytest.skip(f"{layout}: no TIFF input to hold a NaN")
    status, output = cli(bundle, "training", ["train.json"], _training(spec, data, tmp_path / "root"))
    assert status != 0 and "pixels are NaN or Inf" in output, output[-3000:]
    assert any(path in output for path in corrupted)
    assert not list((tmp_path / "root").glob("models/*.pt"))


def test_image_and_label_of_different_sizes_are_refused_naming_both(bundle, spec, dataset, tmp_path):
    layout = spec["synthetic"]["layout"]
    if PARTNER[layout] is None:
        pytest.skip(f"{layout}: labels are polygons drawn at the image's size, no second file")
    data = _copy(dataset, tmp_path)
    for item in build_datalist(layout, str(data)):
        for path in _files(item[PARTNER[layout]]):
            pixels = read_image(path)
            Path(path).unlink()
            write_image(path, np.concatenate([pixels, pixels[:, -1:]], axis=1))  # one column more
    status, output = cli(bundle, "training", ["train.json"], _training(spec, data, tmp_path / "root"))
    assert status != 0 and "differ in size" in output, output[-3000:]
    named = [line for line in output.splitlines() if "differ in size" in line][-1]
    assert named.count(str(data)) >= 2, named  # both files of the pair


def _inference(spec, inputs: Path, release: dict, out: Path, **more) -> dict:
    return {
        **spec.get("inference_overrides", {}),
        "dataset_dir": str(inputs),
        "bundle_root": str(release["source"]),
        "output_dir": str(out),
        **more,
    }


def _inputs_with_a_bad_file(spec, dataset: Path, tmp_path: Path):
    """A copy of the inference input folder with one file that inference reads replaced by garbage; returns the
    folder, that file and its original bytes."""
    inputs = Path(shutil.copytree(dataset / spec["inference_input"], tmp_path / "inputs"))
    pattern = READ_BY_INFERENCE.get(spec["synthetic"]["layout"], "*")
    victim = sorted(p for p in inputs.rglob(pattern) if p.is_file() and image_suffix(p) and "label" not in p.name)[0]
    good = victim.read_bytes()
    victim.write_bytes(b"not an image")
    return inputs, victim, good


def test_folder_inference_goes_on_past_a_bad_file_and_resumes(
    bundle, spec, dataset, release, reference_outputs, tmp_path
):
    inputs, victim, good = _inputs_with_a_bad_file(spec, dataset, tmp_path)
    out = tmp_path / "out"
    status, output = cli(release["source"], "inferring", ["inference.json"], _inference(spec, inputs, release, out))
    assert status != 0 and "failures.csv" in output, output[-3000:]
    with open(out / "failures.csv", newline="") as stream:
        failures = list(csv.DictReader(stream))
    assert [Path(row["input"]).name for row in failures] == [victim.name]
    done = sorted(p.name for p in out.glob(spec["outputs"]["inference_glob"]))
    assert done, "the other inputs were processed"
    stamps = {p: p.stat().st_mtime_ns for p in out.glob(spec["outputs"]["inference_glob"])}
    # the same command after the user fixed the file: only that input is done now, the rest skipped
    victim.write_bytes(good)
    output = run_cli(release["source"], "inferring", ["inference.json"], _inference(spec, inputs, release, out))
    assert "already done, skipped" in output
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())
    assert not (out / "failures.csv").exists()
    assert_same_outputs(out, reference_outputs, spec["outputs"]["inference_glob"])


@needs_deploy
def test_deploy_app_goes_on_past_a_bad_file_and_resumes(bundle, spec, dataset, release, reference_outputs, tmp_path):
    inputs, victim, good = _inputs_with_a_bad_file(spec, dataset, tmp_path)
    out = tmp_path / "out"
    done = deploy_app(release["zip"], inputs, out, spec, tmp_path)
    assert done.returncode != 0 and "failures.csv" in done.stderr + done.stdout, done.stderr[-3000:]
    with open(out / "failures.csv", newline="") as stream:
        assert [Path(row["input"]).name for row in csv.DictReader(stream)] == [victim.name]
    assert list(out.glob(spec["outputs"]["inference_glob"])), "the other inputs were written"
    victim.write_bytes(good)
    done = deploy_app(release["zip"], inputs, out, spec, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already done, skipped" in done.stderr + done.stdout
    assert_same_outputs(out, reference_outputs, spec["outputs"]["inference_glob"])


def test_killed_folder_inference_resumes_to_the_uninterrupted_outputs(
    bundle, spec, dataset, release, reference_outputs, tmp_path
):
    out = tmp_path / "out"
    overrides = _inference(spec, dataset / spec["inference_input"], release, out)
    process = subprocess.Popen(
        cli_command(release["source"], "inferring", ["inference.json"], overrides),
        cwd=release["source"],
        env=CLI_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not list(out.glob(spec["outputs"]["inference_glob"])) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    run_cli(release["source"], "inferring", ["inference.json"], overrides)
    assert_same_outputs(out, reference_outputs, spec["outputs"]["inference_glob"])
    assert not [p for p in out.rglob(".*") if p.is_file()]


def test_evaluation_refuses_to_replace_an_earlier_report(bundle, spec, dataset, release, tmp_path):
    shutil.copytree(release["source"] / "models", tmp_path / "models")
    report = tmp_path / spec["outputs"]["evaluate"]
    report.parent.mkdir(parents=True)
    report.write_text('{"images": 1}')
    status, output = cli(bundle, "evaluating", ["train.json", "evaluate.json"], _training(spec, dataset, tmp_path))
    assert status != 0 and "report of an earlier evaluation" in output, output[-3000:]
    assert report.read_text() == '{"images": 1}'


# --- releases ---------------------------------------------------------------------------------------------------


def _tampered(release: dict, tmp_path: Path, change) -> Path:
    """The release zip with ``change(folder)`` applied to its unpacked bundle folder."""
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(release["zip"]) as archive:
        archive.extractall(folder)
    (bundle_dir,) = folder.iterdir()
    change(bundle_dir)
    return bundle_dir


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "missing", "hash_changed"])
def test_verify_refuses_a_damaged_release(bundle, spec, release, tmp_path, damage):
    model_file = release["model_file"]

    def change(folder: Path) -> None:
        weights = folder / model_file
        if damage == "truncated":
            weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        elif damage == "zeroed":
            data = bytearray(weights.read_bytes())
            data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
            weights.write_bytes(bytes(data))
        elif damage == "missing":
            weights.unlink()
        else:
            listing = (folder / "large_files.yml").read_text()
            digest = __import__("hashlib").sha256(weights.read_bytes()).hexdigest()
            (folder / "large_files.yml").write_text(listing.replace(digest, "0" * 64))

    intact = _tampered(release, tmp_path / "intact", lambda folder: None)
    assert model_file in check_weights(intact, None, spec.get("inference_overrides", {}))
    folder = _tampered(release, tmp_path, change)
    expected = {"truncated": "sha256", "zeroed": "sha256", "missing": "missing", "hash_changed": "sha256"}[damage]
    with pytest.raises(BundleCheckError, match=rf"{model_file}.*{expected}|{expected}.*{model_file}"):
        check_weights(folder, None, spec.get("inference_overrides", {}))
