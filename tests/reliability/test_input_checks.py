"""Bad pixels and mismatched pairs are refused where they are read, naming the files; errors name the sample."""

import numpy as np
import pytest
import torch
from monai.transforms import Lambdad, LoadImaged

from common.io import DataError, ImageFileError, MicroscopyReader, SaveImageFiled, read_image, write_image
from common.transforms import CheckSpatialShapesd, SourceCompose


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_pixels_are_an_error_naming_the_file(tmp_path, bad):
    image = np.ones((8, 9), np.float32)
    image[2, 3] = bad
    path = write_image(tmp_path / "field.tif", image)
    with pytest.raises(ImageFileError, match=r"field\.tif: 1 of 72 pixels are NaN or Inf"):
        read_image(path)
    with pytest.raises(ImageFileError, match=r"field\.tif"):
        LoadImaged("image", reader=MicroscopyReader())({"image": str(path)})


def test_nonfinite_pixels_replaced_by_the_median_when_asked(tmp_path, caplog):
    image = np.arange(72, dtype=np.float32).reshape(8, 9)
    image[0, 0] = np.nan
    path = write_image(tmp_path / "field.tif", image)
    with caplog.at_level("WARNING"):
        pixels = read_image(path, nonfinite="median")
    assert pixels[0, 0] == np.median(image[np.isfinite(image)]) and np.isfinite(pixels).all()
    assert "field.tif: 1 of 72 pixels are NaN or Inf; replaced" in caplog.text
    all_bad = write_image(tmp_path / "blank.tif", np.full((4, 4), np.nan, np.float32))
    with pytest.raises(ImageFileError, match="blank.tif: 16 of 16"):
        read_image(all_bad, nonfinite="median")
    assert read_image(write_image(tmp_path / "int.tif", np.ones((4, 4), np.uint16))).dtype == np.uint16


def test_mismatched_pair_names_both_files_and_shapes(tmp_path):
    image = write_image(tmp_path / "a.tif", np.zeros((8, 9), np.uint8))
    label = write_image(tmp_path / "a_label.tif", np.zeros((8, 10), np.uint16))
    load = SourceCompose(
        [
            LoadImaged(["image", "label"], reader=MicroscopyReader(), ensure_channel_first=True),
            CheckSpatialShapesd(["image", "label"]),
        ]
    )
    with pytest.raises(DataError, match=r"image \(8, 9\) from .*a\.tif; label \(8, 10\) from .*a_label\.tif"):
        load({"image": str(image), "label": str(label)})


def test_errors_inside_transforms_name_the_source_file(tmp_path):
    path = write_image(tmp_path / "cells.tif", np.zeros((8, 9), np.uint8))

    def fail(image):
        raise ValueError("cannot make 3 channels from 2")

    pipeline = SourceCompose(
        [LoadImaged("image", reader=MicroscopyReader(), ensure_channel_first=True), Lambdad("image", fail)]
    )
    with pytest.raises(DataError, match=r"cells\.tif: ValueError: cannot make 3 channels from 2") as caught:
        pipeline({"image": str(path)})
    assert isinstance(caught.value.__cause__, RuntimeError)  # MONAI's own report stays chained
    loaded = LoadImaged("image", reader=MicroscopyReader(), ensure_channel_first=True)({"image": str(path)})
    with pytest.raises(DataError, match=r"cells\.tif: ValueError"):  # the file from the meta data, after loading
        SourceCompose([Lambdad("image", fail)])(loaded)


def test_label_writer_refuses_fractional_ids(tmp_path):
    image = LoadImaged("image", reader=MicroscopyReader(), ensure_channel_first=True)(
        {"image": str(write_image(tmp_path / "in.tif", np.zeros((4, 4), np.uint8)))}
    )["image"]
    pred = image.clone()
    pred[0, 1, 1] = 2.7
    writer = SaveImageFiled("pred", tmp_path / "out", postfix="_label", kind="labels")
    with pytest.raises(ValueError, match=r"in_label\.tiff: labels must be whole numbers.*2\.7"):
        writer({"image": image, "pred": pred})
    assert not (tmp_path / "out" / "in_label.tiff").exists()
    pred[0, 1, 1] = 3.0
    written = writer({"image": image, "pred": pred})["pred_path"]
    assert read_image(written)[1, 1] == 3 and read_image(written).dtype == np.uint16


def test_nonfinite_loss_names_the_batch_files_when_images_dropped_their_meta_data(tmp_path):
    from ignite.engine import Engine
    from monai.data import list_data_collate
    from monai.transforms import EnsureTyped

    from common.handlers import StopOnNonFiniteLoss

    pipeline = SourceCompose(
        [
            LoadImaged("image", reader=MicroscopyReader(), ensure_channel_first=True),
            EnsureTyped("image", track_meta=False),
        ]
    )  # as the bundles' training pipelines end
    paths = [str(write_image(tmp_path / f"{name}.tif", np.zeros((4, 4), np.uint8))) for name in ("a", "b")]
    batch = list_data_collate([pipeline({"image": path}) for path in paths])
    assert not hasattr(batch["image"], "meta")
    engine = Engine(lambda engine, batch: [{"loss": torch.tensor(float("nan"))}])
    StopOnNonFiniteLoss().attach(engine)
    with pytest.raises(FloatingPointError, match=r"loss is nan .*a\.tif.*b\.tif"):
        engine.run([batch], max_epochs=1)
