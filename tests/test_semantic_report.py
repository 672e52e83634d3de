"""Dice, IoU and confluence per image, and the evaluation report with per-cell-type and per-method breakdowns."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from common.handlers import SemanticSegmentationReport
from common.io import livecell_name_fields
from common.metrics import semantic_scores


def test_scores_of_a_drawn_pair():
    pred = torch.zeros(1, 1, 4, 5, dtype=torch.bool)
    label = torch.zeros(1, 1, 4, 5, dtype=torch.bool)
    pred[..., 0:2, 0:3] = True  # 6 pixels
    label[..., 1:3, 0:3] = True  # 6 pixels, 3 shared
    scores = semantic_scores(pred, label)
    assert scores["dice"].item() == pytest.approx(2 * 3 / 12)
    assert scores["iou"].item() == pytest.approx(3 / 9)
    assert scores["confluence_pred"].item() == scores["confluence_true"].item() == pytest.approx(30.0)
    assert scores["confluence_error"].item() == 0.0


def test_scores_of_several_channels_and_empty_masks():
    label = torch.zeros(2, 1, 3, 3)
    label[0, 0, 0, 0] = 1
    pred = torch.stack([torch.ones(2, 3, 3), torch.zeros(2, 3, 3)], dim=1)  # all foreground, all background
    scores = semantic_scores(pred, label)
    assert scores["dice"].shape == (2, 2)
    assert scores["dice"][0].tolist() == pytest.approx([2 / 10, 0.0])
    assert scores["dice"][1].tolist() == [0.0, 1.0]  # empty label: empty prediction is perfect
    assert scores["confluence_error"][1].tolist() == pytest.approx([100.0, 0.0])
    with pytest.raises(ValueError, match="B, C, H, W"):
        semantic_scores(torch.zeros(3, 3), label)


NAMES = ["A172_Phase_A7_1_00d00h00m_1.tif", "A172_Phase_B7_1_00d04h00m_2.tif", "BV2_Phase_D4_2_01d12h00m_3.tif"]


def items(channels: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for name in NAMES:
        image = MetaTensor(torch.zeros(1, 8, 8), meta={"filename_or_obj": f"/data/images/{name}"})
        label = torch.from_numpy(rng.random((1, 8, 8)) < rng.uniform(0.2, 0.8))
        pred = torch.from_numpy(rng.random((channels, 8, 8)) < rng.uniform(0.2, 0.8, (channels, 1, 1)))
        out.append({"image": image, "label": label.float(), "pred": pred.float()})
    return out


def run(report: SemanticSegmentationReport, data: list[dict]) -> Engine:
    engine = Engine(lambda engine, batch: batch)  # each iteration's output: a decollated batch of one image
    report.attach(engine)
    engine.run([[item] for item in data], max_epochs=1)
    return engine


def reference(data, channel=0):
    """Dice and confluence errors per image, in plain numpy."""
    dice, errors = [], []
    for item in data:
        p, t = item["pred"][channel].numpy() > 0, item["label"][0].numpy() > 0
        dice.append(2 * (p & t).sum() / (p.sum() + t.sum()))
        errors.append(100 * (p.mean() - t.mean()))
    return np.array(dice), np.array(errors)


def test_report_writes_rows_means_rmse_and_cell_type_groups(tmp_path):
    data = items(channels=1)
    report = SemanticSegmentationReport(str(tmp_path), fields_from_name=livecell_name_fields,
                                        group_by=["cell_type"], name="semantic_metrics_test")  # fmt: skip
    engine = run(report, data)
    summary = json.loads((tmp_path / "semantic_metrics_test.json").read_text())
    dice, errors = reference(data)
    assert summary["images"] == 3
    assert summary["dice"] == pytest.approx(dice.mean())
    assert summary["confluence_rmse"] == pytest.approx(math.sqrt((errors**2).mean()))
    assert summary["confluence_bias"] == pytest.approx(errors.mean())
    a172 = summary["groups"]["cell_type"]["A172"]
    assert a172["rows"] == 2 and a172["dice"] == pytest.approx(dice[:2].mean())
    assert a172["confluence_rmse"] == pytest.approx(math.sqrt((errors[:2] ** 2).mean()))
    assert summary["groups"]["cell_type"]["BV2"]["dice"] == pytest.approx(dice[2])
    with open(tmp_path / "semantic_metrics_test.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["image"] for row in rows] == NAMES and [row["cell_type"] for row in rows] == ["A172", "A172", "BV2"]
    assert [float(row["dice"]) for row in rows] == pytest.approx(dice.tolist())
    assert engine.state.metrics["dice"] == pytest.approx(dice.mean())


def test_report_with_one_block_per_method(tmp_path):
    data = items(channels=2, seed=1)
    report = SemanticSegmentationReport(str(tmp_path), channel_names=["otsu", "otsu+closing"],
                                        fields_from_name=livecell_name_fields, group_by=["cell_type"])  # fmt: skip
    run(report, data)
    summary = json.loads((tmp_path / "semantic_metrics.json").read_text())
    assert summary["images"] == 3 and sorted(summary["methods"]) == ["otsu", "otsu+closing"]
    for channel, method in enumerate(["otsu", "otsu+closing"]):
        dice, errors = reference(data, channel)
        block = summary["methods"][method]
        assert block["dice"] == pytest.approx(dice.mean())
        assert block["confluence_rmse"] == pytest.approx(math.sqrt((errors**2).mean()))
        assert block["groups"]["cell_type"]["BV2"]["dice"] == pytest.approx(dice[2])
    with open(tmp_path / "semantic_metrics.csv") as stream:
        assert len(list(csv.DictReader(stream))) == 6


def test_report_refuses_a_prediction_of_the_wrong_channel_count(tmp_path):
    report = SemanticSegmentationReport(str(tmp_path), channel_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"expected a \(3, H, W\) prediction"):
        run(report, items(channels=2))
