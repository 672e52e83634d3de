"""Small pieces the bundle configs use: channel conversion, label writer, datalists, report, checkpoints."""

import json
import os

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from monai.networks.nets import FlexibleUNet

from common.handlers import InstanceSegmentationReport
from common.io import LayoutError, SaveImageFiled, dataset_split, image_folder_datalist, label_dtype, read_image
from common.networks import with_batch_norm_momentum
from common.transforms import AsChannels


def test_as_channels_repeats_grey_and_cuts_extra_channels():
    grey = torch.arange(6.0).reshape(1, 2, 3)
    assert torch.equal(AsChannels(3)(grey), grey.repeat(3, 1, 1))
    rgba = np.random.rand(4, 2, 3)
    assert np.array_equal(AsChannels(3)(rgba), rgba[:3])
    with pytest.raises(ValueError, match="cannot make 3 channels from 2"):
        AsChannels(3)(np.zeros((2, 4, 4)))


def test_label_dtype_never_truncates():
    assert label_dtype(np.array([0, 65535])) == np.uint16
    assert label_dtype(np.array([0, 65536])) == np.uint32
    with pytest.raises(ValueError, match=">= 0"):
        label_dtype(np.array([-1, 2]))


def test_save_labels_named_after_input_keeps_ids_and_refuses_to_overwrite(tmp_path):
    labels = torch.zeros(1, 8, 9, dtype=torch.int64)
    labels[0, 2:4, 2:4] = 70000  # above uint16
    image = MetaTensor(
        torch.zeros(1, 8, 9),
        meta={"filename_or_obj": "/data/cell_00007.ome.tiff", "pixel_size_um": np.array([0.5, 0.25])},
    )
    writer = SaveImageFiled("pred", output_dir=str(tmp_path), postfix="_label", kind="labels")
    out = writer({"image": image, "pred": labels})
    written = tmp_path / "cell_00007_label.tiff"
    assert out["pred_path"] == str(written)
    back = read_image(written)
    assert back.dtype == np.uint32 and back.max() == 70000 and back.shape == (8, 9)
    with pytest.raises(FileExistsError, match="cell_00007_label.tiff"):
        writer({"image": image, "pred": labels})
    with pytest.raises(KeyError, match="filename_or_obj"):
        writer({"image": torch.zeros(1, 8, 9), "pred": labels})


def test_dataset_split_uses_published_split_or_a_seeded_one(tmp_path):
    from common.data.synthetic import write_dataset

    bbbc = write_dataset("bbbc039", tmp_path / "bbbc", n=8, size=64, seed=0)
    listed = (bbbc / "metadata" / "test.txt").read_text().split()
    assert [item["id"] + ".png" for item in dataset_split("bbbc039", str(bbbc), "test")] == sorted(listed)
    dsb = write_dataset("dsb2018", tmp_path / "dsb", n=10, size=64, seed=0)
    parts = [dataset_split("dsb2018", str(dsb), split, seed=1) for split in ("training", "validation", "test")]
    ids = [item["id"] for part in parts for item in part]
    assert len(ids) == len(set(ids)) == 10 and [len(p) for p in parts] == [7, 1, 2]
    assert parts[0] == dataset_split("dsb2018", str(dsb), "training", seed=1)
    with pytest.raises(ValueError, match="split"):
        dataset_split("dsb2018", str(dsb), "train")
    assert dataset_split("dsb2018", str(dsb), "training", seed=1, first=3) == parts[0][:3]
    assert dataset_split("bbbc039", str(bbbc), "test", first=1) == dataset_split("bbbc039", str(bbbc), "test")[:1]
    with pytest.raises(ValueError, match="first"):
        dataset_split("dsb2018", str(dsb), "training", first=0)


def test_image_folder_datalist(tmp_path):
    with pytest.raises(LayoutError, match="not found"):
        image_folder_datalist(str(tmp_path / "absent"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(LayoutError, match="no image files"):
        image_folder_datalist(str(tmp_path))
    for name in ("b.tif", "a.png", ".hidden.png"):
        (tmp_path / name).write_bytes(b"")
    assert [os.path.basename(item["image"]) for item in image_folder_datalist(str(tmp_path))] == ["a.png", "b.tif"]


def test_image_folder_datalist_skips_files_matching_exclude_patterns(tmp_path):
    for name in ("cell_1.png", "cell_1_label.tiff", "cell_2.tif", "cell_2_label.tif", "cell_3_LABEL.tiff"):
        (tmp_path / name).write_bytes(b"")

    def names(exclude):
        return [os.path.basename(item["image"]) for item in image_folder_datalist(str(tmp_path), exclude=exclude)]

    assert names(["*_label.tiff"]) == ["cell_1.png", "cell_2.tif", "cell_2_label.tif", "cell_3_LABEL.tiff"]
    assert names("*_label.tif*") == ["cell_1.png", "cell_2.tif", "cell_3_LABEL.tiff"]  # one pattern; case-sensitive
    assert names(["*_label.tif", "*_LABEL.*"]) == ["cell_1.png", "cell_1_label.tiff", "cell_2.tif"]
    assert names(None) == names([]) == sorted(path.name for path in tmp_path.iterdir())
    with pytest.raises(LayoutError, match=r"5 excluded by \['\*'\]"):
        image_folder_datalist(str(tmp_path), exclude=["*"])


def test_instance_report_writes_csv_json_and_engine_metrics(tmp_path):
    gt = torch.zeros(1, 10, 10, dtype=torch.int32)
    gt[0, :5, :5], gt[0, 6:, 6:] = 1, 2
    pred = gt.clone()
    pred[0, 6:, 6:] = 0  # second nucleus missed
    outputs = [
        [{"image": MetaTensor(torch.zeros(1, 10, 10), meta={"filename_or_obj": "/x/a.tif"}), "label": gt, "pred": gt}],
        [
            {
                "image": MetaTensor(torch.zeros(1, 10, 10), meta={"filename_or_obj": "/x/b.tif"}),
                "label": gt,
                "pred": pred,
            }
        ],
    ]
    engine = Engine(lambda engine, batch: batch)
    InstanceSegmentationReport(str(tmp_path), name="report").attach(engine)
    engine.run(outputs, max_epochs=1)
    rows = (tmp_path / "report.csv").read_text().splitlines()
    assert rows[0].startswith("image,n_true,n_pred,precision,recall,f1@0.50") and len(rows) == 3
    assert rows[2].startswith("b.tif,2,1,1.0,0.5,0.666")
    summary = json.loads((tmp_path / "report.json").read_text())
    assert summary["images"] == 2 and summary["mean_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert engine.state.metrics["f1_0.50"] == pytest.approx((1 + 2 / 3) / 2)  # a name MLflow accepts


def test_batch_norm_momentum_reaches_the_encoder():
    network = FlexibleUNet(3, 2, "efficientnet-b0", pretrained=False)
    momenta = {m.momentum for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert 0.01 in momenta
    with_batch_norm_momentum(network, 0.1)
    assert {m.momentum for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}
    with pytest.raises(ValueError, match="momentum"):
        with_batch_norm_momentum(network, 0.0)
