"""Collections split over ranks: the gather helpers, the report, panels and FolderRun on two forked Gloo ranks
against one process (every bundle's torchrun path is in tests/bundles/test_multi_gpu_collections.py)."""

import csv
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from ignite.engine import Engine
from monai.data import MetaTensor

from common.handlers import FolderRunError, MetricsReport, PanelWriter
from common.handlers.distributed import all_gather, gather_shards, rank_and_world, shard, shard_index
from common.io import write_image
from common.metrics import AdipocyteScores
from tests.reliability.test_folder_run import _folder, _infer


def _rank_main(rank: int, function, store: str, args: tuple) -> None:
    torch.set_num_threads(1)  # a forked process must not use the parent's OpenMP threads (as DataLoader workers)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        function(*args)
    finally:
        dist.destroy_process_group()


def on_two_ranks(tmp_path: Path, function, *args) -> None:
    """``function(*args)`` in two forked processes forming a Gloo group; an error on a rank fails the test."""
    store = tmp_path / f"store_{len(list(tmp_path.glob('store_*')))}"
    ranks = torch.multiprocessing.start_processes(
        _rank_main, args=(function, str(store), args), nprocs=2, join=False, start_method="fork"
    )
    deadline = time.monotonic() + 120
    while not ranks.join(timeout=1):
        if time.monotonic() > deadline:
            for process in ranks.processes:
                process.kill()
            pytest.fail(f"{function.__name__}: the ranks did not finish in 120 s")


def _save(folder: Path, value) -> None:
    """Write ``value`` as ``folder/rank<r>.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rank{rank_and_world()[0]}.json").write_text(json.dumps(value))


def _load(folder: Path) -> list:
    return [json.loads((folder / f"rank{rank}.json").read_text()) for rank in (0, 1)]


# --- the helpers ---------------------------------------------------------------------------------------------------
def test_one_process_is_rank_zero_of_one():
    assert rank_and_world() == (0, 1)
    assert shard(range(5)) == [0, 1, 2, 3, 4] and shard_index(3) == 3
    assert gather_shards(["a", "b"]) == ["a", "b"] and all_gather({"x": 1}) == [{"x": 1}]


def _gather(out: Path) -> None:
    rank = rank_and_world()[0]
    mine = shard(list(range(7)))
    gathered = gather_shards([f"item {index}" for index in mine])
    with pytest.raises(ValueError, match=r"hold \[4, 7\] items, not the interleaved shards \[6, 5\] of 11"):
        gather_shards(mine if rank == 0 else list(range(7)))  # rank 1 took the whole collection
    with pytest.raises(ValueError, match="1 items for 2 processes: each needs one"):
        shard([0], every_rank=True)  # an evaluation on one image: refused on both ranks, none waits for the other
    _save(out, {"shard": mine, "indices": [shard_index(i) for i in range(len(mine))], "gathered": gathered})


def test_gather_shards_puts_every_rank_s_items_back_in_order(tmp_path):
    """7 items on 2 ranks: rank 0 takes 0, 2, 4, 6 and rank 1 takes 1, 3, 5; both get all 7 back in order."""
    on_two_ranks(tmp_path, _gather, tmp_path / "out")
    ranks = _load(tmp_path / "out")
    assert [rank["shard"] for rank in ranks] == [[0, 2, 4, 6], [1, 3, 5]]
    assert [rank["indices"] for rank in ranks] == [[0, 2, 4, 6], [1, 3, 5]]
    assert [rank["gathered"] for rank in ranks] == [[f"item {index}" for index in range(7)]] * 2


# --- the report and its panels -------------------------------------------------------------------------------------
def _fields(n: int = 5) -> list[dict]:
    """Decollated evaluator outputs of fluorescence fields at 20x and 40x: (1, 16, 16) input, target, prediction."""
    rng = np.random.default_rng(0)
    items = []
    for index in range(n):
        target = torch.tensor(rng.integers(0, 400, (1, 16, 16)), dtype=torch.float32)
        items.append(
            {
                "image": MetaTensor(target / 400, meta={"filename_or_obj": f"/data/field_{index}.tif"}),
                "label": target,
                "pred": target + torch.tensor(rng.normal(0, 20, (1, 16, 16)), dtype=torch.float32),
                "magnification": [20, 40][index % 2],
                "channels": [1],
                "id": f"field_{index}",
            }
        )
    return items


def _evaluate(out: Path, items: list) -> None:
    """Evaluate ``items`` with the adipocyte report (per-image rows, pooled challenge metric) and 3 panels."""
    engine = Engine(lambda engine, batch: batch)
    MetricsReport(str(out), AdipocyteScores(), group_by=["magnification"], name="fluo").attach(engine)
    PanelWriter(str(out), count=3, mode="channels").attach(engine)
    engine.run([[item] for item in items], max_epochs=1)
    _save(out.parent / f"{out.name}_metrics", engine.state.metrics)


def test_report_and_panels_of_two_ranks_equal_those_of_one_process(tmp_path):
    """5 fields on 2 ranks, each evaluating its shard: the CSV and the panels byte for byte, the summary (the pooled
    challenge metric added up in another order) to 1e-9, written once; both ranks get the metrics."""
    items = _fields()
    _evaluate(tmp_path / "one", items)
    on_two_ranks(tmp_path, lambda: _evaluate(tmp_path / "two", shard(items)))
    one, two = tmp_path / "one", tmp_path / "two"
    assert sorted(p.relative_to(two) for p in two.rglob("*")) == sorted(p.relative_to(one) for p in one.rglob("*"))
    assert (two / "fluo.csv").read_bytes() == (one / "fluo.csv").read_bytes()
    panels = sorted(one.glob("panels/*.png"))
    assert [p.name for p in panels] == ["000_field_0.png", "001_field_1.png", "002_field_2.png"]
    assert all((two / "panels" / p.name).read_bytes() == p.read_bytes() for p in panels)
    expected, got = json.loads((one / "fluo.json").read_text()), json.loads((two / "fluo.json").read_text())
    assert got["images"] == 5 and got["groups"] == expected["groups"]
    assert got["challenge_pixel_metric"]["images"] == {"20x": 3, "40x": 2}
    for key in ("mse", "ssim", "psnr", "mae_over_median", "challenge_mae_over_median"):
        assert got[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
    pooled, expected_pooled = got["challenge_pixel_metric"], expected["challenge_pixel_metric"]
    assert pooled["per_magnification"] == pytest.approx(expected_pooled["per_magnification"], rel=1e-9)
    for magnification, channels in expected_pooled["per_channel"].items():
        assert pooled["per_channel"][magnification] == pytest.approx(channels, rel=1e-9)
    metrics = _load(tmp_path / "two_metrics")
    assert metrics[0] == metrics[1] == pytest.approx(json.loads((tmp_path / "one_metrics" / "rank0.json").read_text()))


# --- FolderRun -----------------------------------------------------------------------------------------------------
def _infer_rank(folder: Path, out: Path, record: Path) -> None:
    """One rank's folder inference, then multi_gpu_inference.json's finalize; records what it did."""
    run, todo = _infer(folder, out, num_workers=0)
    own_log = run.log_path.name
    try:
        run.finish_ranks()
        error = None
    except FolderRunError as raised:
        error = str(raised)
    _save(record, {"todo": [Path(item["image"]).name for item in todo], "own_log": own_log, "error": error})


def _log(out: Path) -> list[dict]:
    with open(out / "inference_log.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_two_ranks_share_a_folder_inference_and_a_rerun_resumes(tmp_path):
    folder, out = _folder(tmp_path, n=5), tmp_path / "out"  # image_1.tif is not an image
    on_two_ranks(tmp_path, _infer_rank, folder, out, tmp_path / "first")
    first = _load(tmp_path / "first")
    assert [rank["todo"] for rank in first] == [
        ["image_0.tif", "image_2.tif", "image_4.tif"],
        ["image_1.tif", "image_3.tif"],
    ]
    assert [rank["own_log"] for rank in first] == ["inference_log.rank0.csv", "inference_log.rank1.csv"]
    for rank in first:  # the failure of rank 1 is reported once, by every rank
        assert rank["error"].startswith("1 input(s) failed, 4 done; see") and "image_1.tif" in rank["error"]
    with open(out / "failures.csv", newline="") as stream:
        assert [Path(row["input"]).name for row in csv.DictReader(stream)] == ["image_1.tif"]
    assert sorted(p.name for p in out.glob("inference_log*")) == ["inference_log.csv"]  # merged by rank 0
    assert sorted((Path(row["input"]).name, row["status"]) for row in _log(out)) == [
        ("image_0.tif", "done"),
        ("image_1.tif", "failed"),
        ("image_2.tif", "done"),
        ("image_3.tif", "done"),
        ("image_4.tif", "done"),
    ]
    # the rerun does the failed input (repaired) and a lost output, one on each rank
    write_image(folder / "image_1.tif", np.full((12, 10), 200, dtype=np.uint8), overwrite=True)
    (out / "image_0_mask.tif").unlink()
    on_two_ranks(tmp_path, _infer_rank, folder, out, tmp_path / "second")
    assert [(rank["todo"], rank["error"]) for rank in _load(tmp_path / "second")] == [
        (["image_0.tif"], None),
        (["image_1.tif"], None),
    ]
    assert not (out / "failures.csv").exists()
    # and then finds nothing to do (no rank runs its evaluator)
    on_two_ranks(tmp_path, _infer_rank, folder, out, tmp_path / "third")
    assert [(rank["todo"], rank["error"]) for rank in _load(tmp_path / "third")] == [([], None), ([], None)]
    single = tmp_path / "single"
    _infer(folder, single, num_workers=0)
    masks = sorted(p.name for p in single.glob("*_mask.tif"))
    assert sorted(p.name for p in out.glob("*_mask.tif")) == masks and len(masks) == 5
    assert all((out / name).read_bytes() == (single / name).read_bytes() for name in masks)
    # a distributed run killed before its logs were merged: one process reads the rank logs, and merges them
    (out / "inference_log.csv").rename(out / "inference_log.rank1.csv")
    (out / "image_2_mask.tif").unlink()
    run, todo = _infer(folder, out, num_workers=0)
    assert [Path(item["image"]).name for item in todo] == ["image_2.tif"]
    assert sorted(p.name for p in out.glob("inference_log*")) == ["inference_log.csv"]
    assert {Path(row["input"]).name for row in _log(out) if row["status"] == "done"} == {
        f"image_{i}.tif" for i in range(5)
    }
