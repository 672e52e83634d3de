"""The LIVECell bundle's configs reach the reliability handlers: training refuses to start over an earlier run's
files unless told, and folder inference goes on past a bad file, names it, exits non-zero and resumes."""

import csv

import numpy as np
import pytest
import tifffile
from monai.bundle import ConfigParser

from common.data.synthetic import write_dataset
from tests.support.bundles import REPO, run_cli, save_untrained_weights

BUNDLE = REPO / "bundles" / "livecell_semantic_segmentation"
CONFIGS = BUNDLE / "configs"
SMALL = {"epochs": 1, "batch_size": 2, "num_samples": 2, "num_workers": 0, "patch_size": [64, 64]}
VARIANT = "unet_2l.json"  # the smallest network, for speed


@pytest.fixture(scope="module")
def livecell(tmp_path_factory):
    return write_dataset("livecell", tmp_path_factory.mktemp("livecell") / "livecell", n=12, size=48, seed=0)


def test_second_training_into_one_folder_is_refused_unless_overwrite(livecell, tmp_path):
    overrides = {"dataset_dir": str(livecell), "bundle_root": str(tmp_path)}
    run_cli(BUNDLE, "training", ["train.json", VARIANT], {**SMALL, **overrides})
    first = (tmp_path / "models" / "model.pt").read_bytes()
    with pytest.raises(AssertionError, match="FileExistsError") as refused:
        run_cli(BUNDLE, "training", ["train.json", VARIANT], {**SMALL, **overrides})
    assert "checkpoint_epoch=1.pt" in str(refused.value) and "--overwrite True" in str(refused.value)
    assert (tmp_path / "models" / "model.pt").read_bytes() == first
    run_cli(BUNDLE, "training", ["train.json", VARIANT], {**SMALL, **overrides, "overwrite": True})
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["checkpoint_epoch=1.pt", "model.pt"]


def test_folder_inference_goes_on_past_a_bad_file_and_resumes(tmp_path):
    images, out = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        tifffile.imwrite(images / f"A172_Phase_A7_1_00d00h00m_{index}.tif", rng.integers(0, 256, (40, 56), np.uint8))
    (images / "broken.tif").write_bytes(b"not a TIFF file")
    overrides = {"dataset_dir": str(images), "output_dir": str(out), "bundle_root": str(tmp_path)}
    variant = ConfigParser.load_config_file(CONFIGS / VARIANT)
    save_untrained_weights(BUNDLE, tmp_path, {"network_def": variant["network_def"]})
    with pytest.raises(AssertionError, match="FolderRunError"):
        run_cli(BUNDLE, "inferring", ["inference.json", VARIANT], overrides)
    masks = sorted(p.name for p in out.glob("*_mask.tif"))
    assert masks == ["A172_Phase_A7_1_00d00h00m_0_mask.tif", "A172_Phase_A7_1_00d00h00m_1_mask.tif"]
    with open(out / "failures.csv", newline="") as stream:
        failed = list(csv.DictReader(stream))
    assert [row["input"] for row in failed] == [str(images / "broken.tif")]
    tifffile.imwrite(images / "broken.tif", rng.integers(0, 256, (40, 56), np.uint8))  # the user repairs it
    written = {name: (out / name).stat().st_mtime_ns for name in masks}
    output = run_cli(BUNDLE, "inferring", ["inference.json", VARIANT], overrides)
    assert "2 of 3 inputs already done" in output
    assert {name: (out / name).stat().st_mtime_ns for name in masks} == written  # not redone
    assert (out / "broken_mask.tif").is_file() and not (out / "failures.csv").exists()
