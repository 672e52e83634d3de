"""SaveChannelFoldersd: one file per channel, each in its folder, written as SaveImageFiled writes one image."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from common.io import SaveChannelFoldersd, SaveImageFiled, read_image, read_pixel_size


def test_each_channel_is_written_as_the_single_image_writer_writes_it(tmp_path):
    pred = torch.rand(3, 8, 9, dtype=torch.float64)
    image = MetaTensor(
        torch.zeros(1, 8, 9),
        meta={"filename_or_obj": "/data/image_1_BF_z0.ome.tiff", "pixel_size_um": np.array([0.5, 0.25])},
    )
    folders = ["a-out", "b-out", "c-out"]
    writer = SaveChannelFoldersd("pred", str(tmp_path / "all"), folders, suffix=".ome.tiff", kind="float")
    out = writer({"image": image, "pred": pred})
    assert out["pred_paths"] == [str(tmp_path / "all" / folder / "image_1_BF_z0.ome.tiff") for folder in folders]
    for channel, (folder, path) in enumerate(zip(folders, out["pred_paths"])):
        single = SaveImageFiled("pred", str(tmp_path / "one" / folder), suffix=".ome.tiff", kind="float")
        alone = single({"image": image, "pred": pred[channel : channel + 1]})["pred_path"]
        written = read_image(path)
        assert written.dtype == np.float32 and written.shape == (8, 9)
        np.testing.assert_array_equal(written, pred[channel].numpy().astype(np.float32))
        assert read_pixel_size(path) == read_pixel_size(alone) == (0.5, 0.25)
    with pytest.raises(FileExistsError, match="image_1_BF_z0.ome.tiff"):
        writer({"image": image, "pred": pred})


def test_a_channel_count_other_than_the_folders_is_refused_naming_the_key(tmp_path):
    image = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": "/data/x.tiff"})
    writer = SaveChannelFoldersd("pred", str(tmp_path), ["only"], kind="float")
    with pytest.raises(ValueError, match=r"pred: 2 channels to write, but folders names 1"):
        writer({"image": image, "pred": torch.zeros(2, 4, 4)})
    assert not any(tmp_path.iterdir())
