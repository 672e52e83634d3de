"""The DSB bundle's configs reach the reliability handlers and score images as the original does: checkpoints of
the last ``checkpoints_kept`` epochs, an earlier run replaced only with ``--overwrite True``, and an image
without nuclei in truth and prediction scoring 0, not 1, in validation and evaluation."""

import json

import pytest
import torch

from common.data.synthetic import write_dataset
from common.handlers import InstanceSegmentationReport
from tests.support.bundles import REPO, parser_for, run_cli

BUNDLE = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"
SMALL = json.loads((REPO / "tests" / "bundles" / "specs" / f"{BUNDLE.name}.json").read_text())["overrides"]


def checkpoint_files(root):
    return sorted(path.name for path in (root / "models").iterdir())


def test_checkpoints_kept_and_a_second_run_only_with_overwrite(tmp_path):
    dataset = write_dataset("bbbc039", tmp_path / "bbbc039", n=8, size=96, seed=0)
    root = tmp_path / "run"
    overrides = {**SMALL, "dataset_dir": str(dataset), "bundle_root": str(root)}
    run_cli(BUNDLE, "training", ["train.json"], {**overrides, "epochs": 3, "checkpoints_kept": 2})
    assert checkpoint_files(root) == ["checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt", "model.pt"]
    first = (root / "models" / "model.pt").read_bytes()
    with pytest.raises(AssertionError, match="FileExistsError") as refused:
        run_cli(BUNDLE, "training", ["train.json"], overrides)
    assert "--overwrite True" in str(refused.value) and "--resume True" in str(refused.value)
    assert (root / "models" / "model.pt").read_bytes() == first
    run_cli(BUNDLE, "training", ["train.json"], {**overrides, "overwrite": True})
    assert checkpoint_files(root) == ["checkpoint_epoch=1.pt", "model.pt"]  # the earlier run's checkpoints gone


def test_a_killed_and_resumed_training_ends_with_the_uninterrupted_weights(tmp_path):
    dataset = write_dataset("bbbc039", tmp_path / "bbbc039", n=8, size=96, seed=0)
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    run_cli(
        BUNDLE,
        "training",
        ["train.json"],
        {**SMALL, "dataset_dir": str(dataset), "bundle_root": str(whole), "epochs": 2, "iterations_per_epoch": 2},
    )
    halves_overrides = {**SMALL, "dataset_dir": str(dataset), "bundle_root": str(halves), "iterations_per_epoch": 2}
    run_cli(BUNDLE, "training", ["train.json"], {**halves_overrides, "epochs": 1})  # as if killed after epoch 1
    run_cli(BUNDLE, "training", ["train.json"], {**halves_overrides, "epochs": 2, "resume": True})
    expected, got = (
        torch.load(root / "models" / "checkpoint_epoch=2.pt", weights_only=False) for root in (whole, halves)
    )
    assert expected["model"].keys() == got["model"].keys()
    for name, tensor in expected["model"].items():
        torch.testing.assert_close(got["model"][name], tensor, rtol=0, atol=0, msg=name)
    assert got["validator"] == expected["validator"]


def test_an_image_without_nuclei_scores_zero_in_validation_and_evaluation(tmp_path):
    # microscopy-with-ml's measures_at: F1 = 2TP / (2TP + FP + FN + 1e-9), so 0 when neither image has a nucleus
    parser = parser_for(BUNDLE, "train.json", "evaluate.json")
    parser["output_dir"] = str(tmp_path)
    (report,) = [h for h in parser.get_parsed_content("validate#handlers") if isinstance(h, InstanceSegmentationReport)]
    metric = parser.get_parsed_content("validate#key_metric#val_mean_f1#metric_fn")
    empty = torch.zeros(1, 32, 32, dtype=torch.int64)
    nucleus = empty.clone()
    nucleus[0, 8:20, 8:20] = 1
    row = report.score_pair(empty, empty)
    assert row["mean_f1"] == row["precision"] == row["recall"] == 0.0 and row["n_true"] == row["n_pred"] == 0
    assert report.score_pair(nucleus, nucleus)["mean_f1"] == 1.0
    metric(torch.stack([empty, nucleus]), torch.stack([empty, nucleus]))
    assert metric.aggregate().item() == pytest.approx(0.5)  # (0 + 1) / 2 images
