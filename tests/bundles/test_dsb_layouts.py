"""The DSB bundle's train config reads both published layouts into the same training samples."""

import pytest
from monai.bundle import ConfigParser

from common.data.synthetic import write_dataset
from tests.support.bundles import REPO

BUNDLE = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"


@pytest.mark.parametrize("layout", ["dsb2018", "bbbc039"])
def test_training_and_validation_samples_from_each_layout(layout, tmp_path):
    dataset = write_dataset(layout, tmp_path / layout, n=8, size=96, seed=0)
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.update(
        {
            "dataset_dir": str(dataset),
            "layout": layout,
            "num_workers": 0,
            "patch_size": [64, 64],
            "pretrained": False,
            "bundle_root": str(tmp_path / "run"),
        }
    )
    sample = parser.get_parsed_content("train#dataset")[0]
    assert sample["image"].shape == (3, 64, 64) and sample["label"].shape == (2, 64, 64)
    assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
    assert set(sample["label"].unique().tolist()) <= {0.0, 1.0}
    validation = parser.get_parsed_content("validate#dataset")[0]
    assert validation["label"].shape[0] == 1 and validation["label"].max() >= 1  # instance ids for the metric
    training_ids = {item["id"] for item in parser.get_parsed_content("train#datalist")}
    validation_ids = {item["id"] for item in parser.get_parsed_content("validate#datalist")}
    assert training_ids and validation_ids and not training_ids & validation_ids
