"""Evaluation pictures: panels (outlines, channels) as PNG and in TensorBoard, the per-group metric plot."""

import csv
import io

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from PIL import Image

from common.handlers import LazySummaryWriter, MetricDistributionPlot, MetricsReport, PanelWriter, TensorBoardPanel
from common.handlers.panels import GAP, channel_panel, display_grey, outline_panel


def _labels(height: int = 24, width: int = 32) -> np.ndarray:
    labels = np.zeros((height, width), np.int32)
    labels[4:12, 4:12] = 1
    labels[14:20, 18:28] = 2
    return labels


def test_outline_panel_draws_truth_in_green_and_prediction_in_magenta():
    image = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(1, 24, 32)
    truth, pred = _labels(), np.zeros((1, 24, 32), np.int32)
    pred[0, 4:12, 4:12] = 7
    panel = outline_panel(torch.as_tensor(image), truth, pred)
    assert panel.shape == (24, 3 * 32 + 2 * GAP, 3) and panel.dtype == np.uint8
    left, middle, right = (panel[:, k * (32 + GAP) : k * (32 + GAP) + 32] for k in range(3))
    grey = display_grey(image[0])
    np.testing.assert_array_equal(left, np.repeat(grey[..., None], 3, -1))
    from skimage.segmentation import find_boundaries

    green = np.all(middle == (0, 255, 0), axis=-1)
    np.testing.assert_array_equal(green, find_boundaries(truth, mode="inner"))
    magenta = np.all(right == (255, 0, 255), axis=-1)
    np.testing.assert_array_equal(magenta, find_boundaries(pred[0], mode="inner"))
    assert np.all(panel[:, 32 : 32 + GAP] == 255)


def test_display_grey_scales_to_percentiles_and_blacks_out_nan():
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    image[0, 0] = np.nan
    grey = display_grey(image)
    finite = image[np.isfinite(image)]
    low, high = np.percentile(finite, (0.5, 99.5))
    expected = (np.clip((image - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(grey[1:], expected[1:])
    assert grey[0, 0] == 0 and grey.dtype == np.uint8


def test_channel_panel_has_one_row_per_channel_and_crops_a_padded_input():
    image = np.random.default_rng(0).random((1, 32, 32), dtype=np.float32)  # padded to 32 by the network's pipeline
    truth = np.random.default_rng(1).random((4, 30, 28), dtype=np.float32)
    truth[2] = np.nan  # an absent organelle
    pred = np.random.default_rng(2).random((4, 30, 28), dtype=np.float32)
    panel = channel_panel(image, truth, pred)
    assert panel.shape == (4 * 30 + 3 * GAP, 3 * 28 + 2 * GAP, 3)
    row = 2 * (30 + GAP)
    assert np.all(panel[row : row + 30, 28 + GAP : 2 * 28 + GAP] == 0)  # NaN truth is black
    np.testing.assert_array_equal(panel[:30, 2 * (28 + GAP) :, 0], display_grey(pred[0]))
    with pytest.raises(ValueError, match="channels"):
        channel_panel(image, truth, pred[:3])


def _items(n: int, channels: int = 1) -> list[dict]:
    rng = np.random.default_rng(0)
    items = []
    for index in range(n):
        image = torch.as_tensor(rng.random((1, 24, 32), dtype=np.float32))
        label = torch.as_tensor(_labels()[None] * (index % 2 + 1))
        pred = label if channels == 1 else torch.as_tensor(rng.random((channels, 24, 32), dtype=np.float32))
        label = label if channels == 1 else torch.as_tensor(rng.random((channels, 24, 32), dtype=np.float32))
        items.append({"image": image, "label": label, "pred": pred, "source_file": f"/data/img_{index}.ome.tif"})
    return items


def test_panel_writer_writes_the_first_images_and_refuses_an_earlier_run(tmp_path):
    items = _items(5, channels=3)
    engine = Engine(lambda engine, batch: batch)  # outputs decollated batches, as MONAI's evaluators do
    writer = PanelWriter(str(tmp_path), name="panels_test", count=3, mode="channels")
    writer.attach(engine)
    engine.run([items[0:2], items[2:4], items[4:5]])
    written = sorted((tmp_path / "panels_test").glob("*.png"))
    assert [path.name for path in written] == ["000_img_0.png", "001_img_1.png", "002_img_2.png"]
    with Image.open(written[1]) as png:
        assert png.mode == "RGB" and png.size == (3 * 32 + 2 * GAP, 3 * 24 + 2 * GAP)
        np.testing.assert_array_equal(
            np.asarray(png), channel_panel(items[1]["image"], items[1]["label"], items[1]["pred"])
        )
    assert not list((tmp_path / "panels_test").glob(".*partial"))
    with pytest.raises(FileExistsError, match="panels_test"):
        PanelWriter(str(tmp_path), name="panels_test").attach(Engine(lambda e, b: b))
    PanelWriter(str(tmp_path), name="panels_test", overwrite=True).attach(Engine(lambda e, b: b))
    with pytest.raises(KeyError, match="label"):
        bad = PanelWriter(str(tmp_path / "other"))
        engine = Engine(lambda e, b: b)
        bad.attach(engine)
        engine.run([[{"image": items[0]["image"], "pred": items[0]["pred"]}]])


def test_tensorboard_panel_logs_the_same_image_at_every_evaluation(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    items = _items(4)
    writer = LazySummaryWriter(str(tmp_path / "logs"))
    assert not (tmp_path / "logs").exists()  # nothing written before the first use
    panel = TensorBoardPanel(writer, index=3, mode="outlines")
    engine = Engine(lambda e, b: b)
    panel.attach(engine)
    engine.run([items[0:2], items[2:4]], max_epochs=2)
    writer.close()
    (events,) = (tmp_path / "logs").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events), size_guidance={"images": 0})
    accumulator.Reload()
    logged = accumulator.Images("validation_panel")
    assert [event.step for event in logged] == [1, 2]
    expected = outline_panel(items[3]["image"], items[3]["label"], items[3]["pred"])
    for event in logged:
        with Image.open(io.BytesIO(event.encoded_image_string)) as png:
            np.testing.assert_array_equal(np.asarray(png.convert("RGB")), expected)


def _report_rows(tmp_path, rows: list[dict]) -> MetricsReport:
    report = MetricsReport(str(tmp_path), score=lambda *args: {}, group_by=["cell_type"], name="semantic_metrics_test")
    with open(report.paths[0], "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return report


def test_distribution_plot_groups_the_report_rows(tmp_path):
    rows = [
        {"image": f"{cell}_{k}.tif", "cell_type": cell, "dice": dice, "iou": dice / 2}
        for cell, values in [("SkBr3", [0.9, 0.8]), ("A172", [0.5, 0.6, 0.7]), ("BV2", [0.2])]
        for k, dice in enumerate(values)
    ]
    rows.append({"image": "x.tif", "cell_type": "BV2", "dice": "nan", "iou": ""})  # left out, still counted as a row
    report = _report_rows(tmp_path, rows)
    plot = MetricDistributionPlot(report, metrics=["dice", "iou"])
    groups = plot.groups(plot.read_rows())
    assert list(groups) == ["A172", "BV2", "SkBr3"]
    assert groups["A172"]["dice"] == [0.5, 0.6, 0.7] and groups["BV2"]["iou"] == [0.1]
    figure = plot.figure(groups)
    axes = figure.get_axes()
    assert [axis.get_ylabel() for axis in axes] == ["dice", "iou"]
    assert [tick.get_text() for tick in axes[0].get_xticklabels()] == ["A172\n(n=3)", "BV2\n(n=1)", "SkBr3\n(n=2)"]
    engine = Engine(lambda e, b: b)
    plot.attach(engine)
    engine.run([0])
    assert plot.path == tmp_path / "semantic_metrics_test_distribution.png"
    with Image.open(plot.path) as png:
        assert png.format == "PNG" and png.size[1] == 600  # two 3-inch panels at 100 dpi
    with pytest.raises(FileExistsError, match="distribution"):
        MetricDistributionPlot(report, metrics=["dice"]).attach(Engine(lambda e, b: b))


def test_distribution_plot_joins_fields_or_pools_all_rows_and_names_a_missing_column(tmp_path):
    rows = [
        {"image": "a", "magnification": "20", "channel": "1", "ssim": 0.5},
        {"image": "b", "magnification": "20", "channel": "2", "ssim": 0.6},
        {"image": "c", "magnification": "60", "channel": "1", "ssim": 0.7},
    ]
    report = _report_rows(tmp_path, rows)
    joined = MetricDistributionPlot(report, ["ssim"], group_by=["magnification", "channel"])
    assert list(joined.groups(joined.read_rows())) == ["20, 1", "20, 2", "60, 1"]
    pooled = MetricDistributionPlot(report, ["ssim"], group_by=[])
    assert pooled.groups(pooled.read_rows()) == {"all images": {"ssim": [0.5, 0.6, 0.7]}}
    with pytest.raises(KeyError, match="psnr"):
        MetricDistributionPlot(report, ["psnr"]).write()
