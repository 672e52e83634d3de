"""The LIVECell bundle learns: a UNet variant trained for 200 iterations on synthetic LIVECell-layout data beats
the adaptive-threshold baseline on the same held-out test images, both scored by the same report."""

import json
import time

import pytest

from common.data.synthetic import write_dataset
from tests.support.bundles import REPO, run_cli, train_and_evaluate

BUNDLE = REPO / "bundles" / "livecell_semantic_segmentation"
SMALL = {"num_workers": 0, "patch_size": [64, 64]}


@pytest.mark.slow
def test_unet_trained_a_few_hundred_iterations_beats_the_threshold_baseline(tmp_path):
    start = time.perf_counter()
    dataset = write_dataset("livecell", tmp_path / "livecell", n=40, size=128, seed=3)  # 24 train, 4 val, 12 test
    common = {**SMALL, "dataset_dir": str(dataset)}

    baseline_root = tmp_path / "baseline"
    run_cli(
        BUNDLE,
        "baseline",
        ["train.json", "baseline.json"],
        {**common, "bundle_root": str(baseline_root), "eval_split": "test"},
    )
    baseline = json.loads((baseline_root / "eval" / "baseline_metrics_test.json").read_text())

    # 25 epochs of 8 iterations (24 images, batch 3, 4 crops each); lr 1e-3 since the run is short and from scratch
    training = {"epochs": 25, "batch_size": 3, "learning_rate": 1e-3, "val_interval": 25}
    result = train_and_evaluate(
        BUNDLE,
        dataset,
        tmp_path / "trained",
        SMALL,
        training,
        "semantic_metrics_test.json",
        ("train.json", "unet_4l.json"),
    )

    methods = baseline["methods"]
    best = max(methods, key=lambda name: methods[name]["dice"])
    print(f"{time.perf_counter() - start:.0f} s; trained: Dice {result['dice']:.3f}, IoU {result['iou']:.3f}, "
          f"confluence RMSE {result['confluence_rmse']:.2f}; best baseline {best}: Dice {methods[best]['dice']:.3f}, "
          f"confluence RMSE {methods[best]['confluence_rmse']:.2f}")  # fmt: skip
    assert baseline["images"] == result["images"] == 12
    assert result["dice"] > methods[best]["dice"] + 0.1, (result, methods)
    assert result["dice"] > 0.85
    assert result["confluence_rmse"] < min(block["confluence_rmse"] for block in methods.values())
    assert set(result["groups"]["cell_type"]) == set(methods[best]["groups"]["cell_type"])
