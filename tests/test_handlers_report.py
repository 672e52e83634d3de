"""MetricsReport: rows per image, overall and per-group means recomputed by hand."""

import csv
import json

import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from common.handlers import MetricsReport


def item(name, cell_type, pred, label):
    return {
        "image": MetaTensor(torch.zeros(1, 2, 2), meta={"filename_or_obj": f"/data/{name}"}),
        "cell_type": cell_type,
        "pred": torch.tensor(pred),
        "label": torch.tensor(label),
    }


def abs_error(pred, label, item):
    return {"error": float((pred - label).abs().mean())}


def run(report, batches):
    engine = Engine(lambda engine, batch: batch)
    report.attach(engine)
    engine.run(batches, max_epochs=1)
    return engine


def test_overall_and_group_means(tmp_path):
    batches = [
        [item("a.tif", "A172", [1.0], [0.0]), item("b.tif", "BV2", [3.0], [0.0])],
        [item("c.tif", "A172", [0.5], [0.0])],
    ]
    engine = run(MetricsReport(str(tmp_path), abs_error, group_by=("cell_type",), name="dice"), batches)
    summary = json.loads((tmp_path / "dice.json").read_text())
    assert summary["images"] == 3 and summary["error"] == pytest.approx(1.5)
    assert summary["groups"]["cell_type"] == {"A172": {"rows": 2, "error": 0.75}, "BV2": {"rows": 1, "error": 3.0}}
    assert engine.state.metrics == {"error": pytest.approx(1.5)}
    with open(tmp_path / "dice.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["image"], r["cell_type"], float(r["error"])) for r in rows] == [
        ("a.tif", "A172", 1.0),
        ("b.tif", "BV2", 3.0),
        ("c.tif", "A172", 0.5),
    ]


def test_several_rows_per_image_with_columns_some_rows_lack(tmp_path):
    def per_channel(pred, label, item):
        rows = [{"organelle": "nucleus", "pcc": 0.5, "mae": 0.25}, {"organelle": "actin", "pcc": 0.75}]
        return rows + [{"organelle": "tubulin", "pcc": float("nan")}]

    run(MetricsReport(str(tmp_path), per_channel, group_by=("organelle",)), [[item("a.tif", "x", [0.0], [0.0])]])
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["images"] == 1 and summary["pcc"] == pytest.approx(0.625) and summary["mae"] == 0.25
    assert summary["groups"]["organelle"]["actin"] == {"rows": 1, "pcc": 0.75}
    assert summary["groups"]["organelle"]["tubulin"] == {"rows": 1}  # NaN alone gives no mean
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "image,organelle,pcc,mae" and lines[2] == "a.tif,actin,0.75,"


def test_empty_runs_and_missing_keys_are_errors(tmp_path):
    with pytest.raises(RuntimeError, match="saw no images"):
        run(MetricsReport(str(tmp_path), abs_error), [[]])
    with pytest.raises(KeyError, match="'label'"):
        run(MetricsReport(str(tmp_path), abs_error), [[{"image": torch.zeros(1), "pred": torch.zeros(1)}]])
    assert not (tmp_path / "metrics.json").exists()


def test_report_of_an_earlier_run_is_not_replaced_unless_asked(tmp_path):
    batches = [[item("a.tif", "x", [1.0], [0.0])]]
    run(MetricsReport(str(tmp_path), abs_error), batches)
    before = (tmp_path / "metrics.json").read_text()
    with pytest.raises(FileExistsError, match=r"metrics\.(csv|json).*--overwrite True"):
        run(MetricsReport(str(tmp_path), abs_error), [[item("a.tif", "x", [5.0], [0.0])]])
    assert (tmp_path / "metrics.json").read_text() == before
    run(MetricsReport(str(tmp_path), abs_error, overwrite=True), [[item("a.tif", "x", [5.0], [0.0])]])
    assert (tmp_path / "metrics.json").read_text() != before
    assert not list(tmp_path.glob(".*"))
