"""Maximum-intensity projection and non-overlapping tiles: references computed with NumPy slicing and max."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.transforms import LoadImaged

from common.data.synthetic import write_dataset
from common.io import MicroscopyReader, adipocyte_datalist, read_image
from common.transforms import (
    MaxIntensityProjection,
    MaxIntensityProjectiond,
    MergeTiles,
    MergeTilesd,
    Tile,
    Tiled,
    merge_tiles,
    tile_image,
)

# ------------------------------------------------------------------------------------------------ projection


def test_projection_equals_numpy_max_over_the_planes():
    stack = np.random.default_rng(0).integers(0, 65536, size=(7, 33, 41), dtype=np.uint16)
    expected = np.max(stack, axis=0)[None]
    projected = MaxIntensityProjection()(stack)
    assert projected.dtype == np.uint16
    np.testing.assert_array_equal(projected, expected)
    as_tensor = MaxIntensityProjection()(torch.from_numpy(stack.astype(np.int32)))
    np.testing.assert_array_equal(as_tensor.numpy(), expected)
    np.testing.assert_array_equal(MaxIntensityProjection(dim=-1, keepdim=False)(np.moveaxis(stack, 0, -1)), expected[0])


def test_projection_of_a_stack_loaded_from_adipocyte_files(tmp_path):
    root = write_dataset("adipocyte", tmp_path / "adipocyte", n=1, size=40, seed=1)
    item = adipocyte_datalist(root)[0]
    loaded = LoadImaged("brightfield", reader=MicroscopyReader(), ensure_channel_first=True)(item)
    assert loaded["brightfield"].shape[0] == 7
    projected = MaxIntensityProjectiond("brightfield")(loaded)["brightfield"]
    expected = np.max(np.stack([read_image(path) for path in item["brightfield"]]), axis=0)
    assert isinstance(projected, MetaTensor) and projected.meta["filename_or_obj"] == item["brightfield"][0]
    np.testing.assert_array_equal(projected.numpy(), expected[None])


def test_projection_rejects_an_image_without_planes():
    with pytest.raises(ValueError, match="key 'brightfield': .*shape \\(5, 6\\)"):
        MaxIntensityProjectiond("brightfield")({"brightfield": np.zeros((5, 6))})


# ------------------------------------------------------------------------------------------------ tiles


@pytest.mark.parametrize("as_tensor", [False, True])
def test_tiles_are_the_image_blocks_row_by_row_and_merge_back_exactly(as_tensor):
    image = np.random.default_rng(1).normal(size=(2, 12, 20)).astype(np.float32)
    data = torch.from_numpy(image) if as_tensor else image
    tiles = Tile((4, 5))(data)
    assert tuple(tiles.shape) == (12, 2, 4, 5) and type(tiles) is type(data)
    for k in range(12):
        row, column = divmod(k, 4)
        expected = image[:, row * 4 : row * 4 + 4, column * 5 : column * 5 + 5]
        np.testing.assert_array_equal(np.asarray(tiles[k]), expected)
    merged = MergeTiles((3, 4))(tiles)
    np.testing.assert_array_equal(np.asarray(merged), image)  # bit for bit
    assert np.asarray(merge_tiles(tile_image(data, 4), (3, 5))).tobytes() == image.tobytes()


def test_dictionary_tiles_keep_image_and_target_aligned():
    image = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 8, 8)
    label = -image[:1]
    tiles = Tiled(["image", "label"], 4)({"image": image, "label": label, "id": "A"})
    assert len(tiles) == 4 and all(tile["id"] == "A" for tile in tiles)
    for tile in tiles:
        torch.testing.assert_close(tile["label"], -tile["image"][:1])
    stacked = {"image": torch.stack([tile["image"] for tile in tiles])}
    torch.testing.assert_close(MergeTilesd("image", (2, 2))(stacked)["image"], image, rtol=0, atol=0)


def test_tiling_rejects_shapes_that_do_not_split():
    with pytest.raises(ValueError, match="key 'label': .*\\(10, 12\\) does not split into \\(4, 4\\) tiles"):
        Tiled(["label"], 4)({"label": np.zeros((1, 10, 12))})
    with pytest.raises(ValueError, match="one spatial shape"):
        Tiled(["image", "label"], 4)({"image": np.zeros((1, 8, 8)), "label": np.zeros((1, 8, 12))})
    with pytest.raises(ValueError, match="N = 2 x 2 = 4"):
        MergeTiles((2, 2))(np.zeros((3, 1, 4, 4)))


def test_sliding_window_without_overlap_is_tile_predict_merge():
    """The bundle infers with SlidingWindowInferer(roi=tile, overlap=0): the same cut and merge as Tile/MergeTiles."""
    torch.manual_seed(0)
    network = torch.nn.Conv2d(1, 1, 3, padding=1)  # zero padding: results near tile borders depend on the cut
    image = torch.rand(1, 1, 16, 24)
    with torch.no_grad():
        tilewise = merge_tiles(network(tile_image(image[0], 8)), (2, 3))[None]
        windowed = SlidingWindowInferer(roi_size=(8, 8), overlap=0.0, mode="constant")(image, network)
        whole = network(image)
    torch.testing.assert_close(windowed, tilewise)
    assert not torch.allclose(windowed, whole)
