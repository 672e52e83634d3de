"""Reading, writing and MONAI loading of PNG, TIFF and OME-TIFF images (common.io.images)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile
import torch
from monai.transforms import LoadImage, LoadImaged
from PIL import Image

from common.io.errors import ImageFileError
from common.io.images import (
    MicroscopyReader,
    read_image,
    read_pixel_size,
    read_tiff_shape,
    write_image,
    write_ome_tiff,
)

H, W = 5, 7  # non-square so that a swapped (x, y) order shows


def ramp(dtype=np.uint16, channels: int | None = None) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` array whose value encodes its position: 100 y + 10 x + c (mod 256 for uint8)."""
    y, x = np.mgrid[:H, :W]
    grid = 100 * y + 10 * x
    if channels is not None:
        grid = grid[..., None] + np.arange(channels)
    return (grid % 256 if dtype == np.uint8 else grid).astype(dtype)


def match(path) -> str:
    return re.escape(str(path))


# ----------------------------------------------------------------------------------------------- read_image


def test_png_grey_and_rgba_keep_y_x_order_and_dtype(tmp_path):
    Image.fromarray(ramp(np.uint8)).save(tmp_path / "grey.png")
    Image.fromarray(ramp(np.uint8, 4), mode="RGBA").save(tmp_path / "rgba.png")
    grey, rgba = read_image(tmp_path / "grey.png"), read_image(tmp_path / "rgba.png")
    assert grey.shape == (H, W) and grey.dtype == np.uint8 and grey[3, 2] == 320 % 256
    assert rgba.shape == (H, W, 4) and rgba[4, 6, 3] == (400 + 60 + 3) % 256


def test_png_16_bit_stays_16_bit(tmp_path):
    write_image(tmp_path / "deep.png", ramp() * 100)
    pixels = read_image(tmp_path / "deep.png")
    assert pixels.dtype == np.uint16 and pixels[4, 6] == 46000


def test_16_bit_rgb_png_is_not_cut_to_8_bits(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")
    deep = ramp(channels=3) * 100
    data = imagecodecs.png_encode(deep)
    (tmp_path / "deep.png").write_bytes(data)
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), deep)
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFileError, match=match(tmp_path / "cut.png")):
        read_image(tmp_path / "cut.png")


def test_palette_png_is_expanded_to_rgb(tmp_path):
    Image.fromarray(ramp(np.uint8) % 4).convert("P").save(tmp_path / "palette.png")
    palette = Image.open(tmp_path / "palette.png")
    assert palette.mode == "P"
    assert read_image(tmp_path / "palette.png").shape == (H, W, 3)


@pytest.mark.parametrize(
    "stored, axes, expected_shape",
    [
        ((3, H, W), None, (H, W, 3)),  # channels-first stack: pages become the last axis
        ((1, H, W), None, (H, W)),  # singleton page squeezed
        ((H, W, 3), "YXS", (H, W, 3)),  # interleaved RGB
        ((4, 1, H, W), "ZCYX", (H, W, 4)),  # z stack with a singleton channel axis
    ],
)
def test_tiff_axes_rule(tmp_path, stored, axes, expected_shape):
    array = np.arange(np.prod(stored), dtype=np.uint16).reshape(stored)
    kwargs = {"imagej": True, "metadata": {"axes": axes}} if axes == "ZCYX" else {}
    kwargs = {"photometric": "rgb"} if axes == "YXS" else kwargs
    tifffile.imwrite(tmp_path / "stack.tif", array, **kwargs)
    pixels = read_image(tmp_path / "stack.tif")
    assert pixels.shape == expected_shape and pixels.dtype == np.uint16
    assert read_tiff_shape(tmp_path / "stack.tif") == expected_shape  # from the header alone
    if stored == (3, H, W):
        np.testing.assert_array_equal(pixels, np.moveaxis(array, 0, -1))


def test_big_endian_tiff_reads_native_values(tmp_path):
    tifffile.imwrite(tmp_path / "big.tif", ramp(), byteorder=">")
    pixels = read_image(tmp_path / "big.tif")
    assert pixels.dtype == np.uint16 and pixels.dtype.isnative
    np.testing.assert_array_equal(pixels, ramp())


def test_tiff_with_two_channel_like_axes_is_refused(tmp_path):
    path = tmp_path / "zc.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 3, H, W), np.uint8), ome=True, metadata={"axes": "ZCYX"})
    with pytest.raises(ImageFileError, match=match(path)):
        read_image(path)


@pytest.mark.parametrize("name", ["cells.tif", "cells.png"])
def test_truncated_files_raise_image_file_error(tmp_path, name):
    path = tmp_path / name
    write_image(path, np.random.default_rng(0).integers(0, 255, (64, 80), dtype=np.uint8), ome=False)
    if name.endswith(".tif"):  # uncompressed, so that cutting the file cuts pixel data
        tifffile.imwrite(path, np.random.default_rng(0).integers(0, 65535, (64, 80), dtype=np.uint16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFileError, match=match(path)):
        read_image(path)


def test_tiff_shape_from_the_header_names_damaged_files(tmp_path):
    tiled = tmp_path / "tiled.ome.tif"
    tifffile.imwrite(tiled, np.zeros((64, 48), np.uint16), ome=True, tile=(16, 16), compression="zlib")
    assert read_tiff_shape(tiled) == (64, 48)
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, np.ones((64, 80), np.uint16))  # uncompressed
    with tifffile.TiffFile(path) as tiff:
        end = tiff.pages[0].dataoffsets[0] + tiff.pages[0].databytecounts[0]
    path.write_bytes(path.read_bytes()[: end - 1])
    with pytest.raises(
        ImageFileError,
        match=rf"{match(path)}: truncated, the image data end at byte {end} of a "
        rf"{end - 1}-byte file",
    ):
        read_tiff_shape(path)
    damaged = {b"": "empty file", b"not a tiff": "not a TIFF file", b"II*\x00 garbage after the header": "no image"}
    for content, expected in damaged.items():
        path.write_bytes(content)
        with pytest.raises(ImageFileError, match=rf"{match(path)}: .*{expected}"):
            read_tiff_shape(path)
    with pytest.raises(ImageFileError, match=rf"{match(tmp_path / 'absent.tif')}: image file not found"):
        read_tiff_shape(tmp_path / "absent.tif")
    zc = tmp_path / "zc.ome.tif"
    tifffile.imwrite(zc, np.zeros((2, 3, H, W), np.uint8), ome=True, metadata={"axes": "ZCYX"})
    with pytest.raises(ImageFileError, match=rf"{match(zc)}: TIFF of axes 'ZCYX'"):
        read_tiff_shape(zc)


def test_garbage_file_missing_file_and_unsupported_suffix(tmp_path):
    (tmp_path / "noise.tif").write_bytes(b"not a tiff at all")
    (tmp_path / "notes.txt").write_text("text")
    for path in (tmp_path / "noise.tif", tmp_path / "absent.png", tmp_path / "notes.txt"):
        with pytest.raises(ImageFileError, match=match(path)):
            read_image(path)


def test_empty_image_is_refused(tmp_path):
    empty = tmp_path / "empty.tif"
    tifffile.imwrite(empty, np.zeros((0, 4), np.uint8))
    with pytest.raises(ImageFileError, match=match(empty)):
        read_image(empty)


# ----------------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize("name", ["out.tif", "out.ome.tif", "out.ome.tiff"])
@pytest.mark.parametrize(
    "array",
    [ramp(np.float32) / 7, ramp(np.uint16), ramp(np.uint32) * 100_000, ramp(np.float32, channels=4)],
    ids=["float32", "uint16", "uint32-labels", "float32-4-channels"],
)
def test_tiff_round_trip_keeps_values_and_dtype(tmp_path, name, array):
    write_image(tmp_path / name, array)
    back = read_image(tmp_path / name)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_png_round_trip_and_png_refuses_labels_above_uint16(tmp_path):
    rgb = ramp(np.uint8, 3)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "rgb.png", rgb)), rgb)
    with pytest.raises(ImageFileError, match="labels.png"):
        write_image(tmp_path / "labels.png", ramp(np.uint32))
    assert not (tmp_path / "labels.png").exists()


def test_pixel_size_round_trip_ome_and_plain_tiff(tmp_path):
    write_ome_tiff(tmp_path / "a.ome.tif", ramp(), pixel_size=(0.325, 0.65))
    write_image(tmp_path / "b.tif", ramp(), pixel_size=(0.5, 0.25))
    write_image(tmp_path / "c.tif", ramp())
    assert read_pixel_size(tmp_path / "a.ome.tif") == pytest.approx((0.325, 0.65))
    assert read_pixel_size(tmp_path / "b.tif") == pytest.approx((0.5, 0.25))
    assert read_pixel_size(tmp_path / "c.tif") is None


def test_pixel_size_of_ome_in_nanometres_and_imagej_microns(tmp_path):
    tifffile.imwrite(
        tmp_path / "nm.ome.tif", ramp(), ome=True,
        metadata={"PhysicalSizeX": 650, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 325, "PhysicalSizeYUnit": "nm"},
    )  # fmt: skip
    tifffile.imwrite(tmp_path / "ij.tif", ramp(), imagej=True, resolution=(4.0, 2.0), metadata={"unit": "micron"})
    assert read_pixel_size(tmp_path / "nm.ome.tif") == pytest.approx((0.325, 0.65))
    assert read_pixel_size(tmp_path / "ij.tif") == pytest.approx((0.5, 0.25))


def test_write_refuses_to_overwrite(tmp_path):
    path = write_image(tmp_path / "keep.tif", ramp())
    with pytest.raises(FileExistsError, match=match(path)):
        write_image(path, ramp() * 0)
    np.testing.assert_array_equal(read_image(path), ramp())
    write_image(path, ramp() * 0, overwrite=True)
    assert read_image(path).max() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tif"]  # no partial file left


# ----------------------------------------------------------------------------------------------- MONAI reader


def load(path, **options):
    loader = LoadImaged(keys="image", reader=MicroscopyReader(), ensure_channel_first=True, **options)
    return loader({"image": path})["image"]


def test_loadimaged_grey_png_is_channel_first_y_x(tmp_path):
    Image.fromarray(ramp(np.uint8)).save(tmp_path / "grey.png")
    image = load(str(tmp_path / "grey.png"))
    assert image.shape == (1, H, W) and image.dtype == torch.float32
    assert image[0, 3, 2] == 320 % 256
    assert image.meta["filename_or_obj"] == str(tmp_path / "grey.png")
    assert list(image.meta["spatial_shape"]) == [H, W]


def test_loadimaged_rgba_png_has_four_channels(tmp_path):
    Image.fromarray(ramp(np.uint8, 4), mode="RGBA").save(tmp_path / "rgba.png")
    image = load(tmp_path / "rgba.png", dtype=None)
    assert image.shape == (4, H, W) and image.dtype == torch.uint8
    assert image[2, 4, 1] == (400 + 10 + 2) % 256


def test_loadimaged_16_bit_tiff_keeps_values_with_dtype_none(tmp_path):
    tifffile.imwrite(tmp_path / "deep.tif", ramp() * 100)
    image = load(tmp_path / "deep.tif", dtype=None)
    assert image.shape == (1, H, W) and image[0, 4, 6] == 46000 and not image.is_floating_point()


def test_loadimaged_ome_tiff_channels_and_pixel_size(tmp_path):
    write_ome_tiff(tmp_path / "c.ome.tif", ramp(np.float32, channels=2), pixel_size=(0.3, 0.6))
    image = load(tmp_path / "c.ome.tif")
    assert image.shape == (2, H, W) and image[1, 4, 6] == 461
    np.testing.assert_allclose(image.meta["pixel_size_um"], (0.3, 0.6))


def test_loadimaged_stacks_a_list_of_files_as_channels(tmp_path):
    for z in range(3):
        tifffile.imwrite(tmp_path / f"z{z}.tif", ramp() + z)
    image = load([str(tmp_path / f"z{z}.tif") for z in range(3)])
    assert image.shape == (3, H, W) and image[2, 1, 1] == 112


def test_reader_by_dotted_name_and_errors_are_image_file_errors(tmp_path):
    tifffile.imwrite(tmp_path / "ok.tif", ramp())
    loader = LoadImage(reader="common.io.images.MicroscopyReader", image_only=True, ensure_channel_first=True)
    assert loader(tmp_path / "ok.tif").shape == (1, H, W)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ImageFileError, match=match(tmp_path / "bad.png")):
        loader(tmp_path / "bad.png")


def test_reader_verify_suffix():
    reader = MicroscopyReader()
    assert reader.verify_suffix("a.ome.tiff") and reader.verify_suffix(["a.PNG", "b.jpg"])
    assert not reader.verify_suffix("a.nii.gz") and not reader.verify_suffix(["a.png", "b.txt"])
