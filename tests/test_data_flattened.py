"""FlattenedDataset lists the samples of a cached multi-sample transform one by one, in order, without copies."""

import pytest
import torch
from monai.data import CacheDataset
from monai.transforms import Compose, EnsureTyped, Lambdad

from common.data import FlattenedDataset
from common.transforms import Tiled


def tiled_cache(count: int) -> CacheDataset:
    """``count`` (1, 4, 6) images cut into six 2 x 2 tiles each; tile k of image i holds 10 * i + k."""
    grid = (torch.arange(2.0)[:, None] * 3 + torch.arange(3.0)).repeat_interleave(2, 0).repeat_interleave(2, 1)
    images = [{"image": (grid + 10 * index)[None], "id": f"image{index}"} for index in range(count)]
    transform = Compose([Tiled(keys="image", tile_size=2), EnsureTyped(keys="image", track_meta=False)])
    return CacheDataset(images, transform, cache_rate=1.0, copy_cache=False, progress=False)


def test_samples_come_item_by_item_in_the_order_of_the_multi_sample_transform():
    cache = tiled_cache(3)
    dataset = FlattenedDataset(cache)
    assert len(dataset) == 18
    assert [float(dataset[n]["image"].unique()) for n in range(18)] == [10 * i + k for i in range(3) for k in range(6)]
    assert [dataset[n]["id"] for n in (0, 5, 6, 17)] == ["image0", "image0", "image1", "image2"]
    assert dataset[7]["image"].shape == (1, 2, 2)
    assert dataset[7]["image"] is cache[1][1]["image"]  # the cached sample, not a copy


def test_transform_is_applied_to_each_sample_when_read():
    calls = []

    def negate(image):
        calls.append(image)
        return -image

    dataset = FlattenedDataset(tiled_cache(2), Lambdad("image", negate))
    assert len(calls) == 0
    assert float(dataset[8]["image"].unique()) == -12.0
    assert float(dataset[8]["image"].unique()) == -12.0 and len(calls) == 2  # the cache itself is left as it was


def test_an_item_that_is_not_a_list_of_samples_is_named():
    with pytest.raises(TypeError, match=r"dataset\[1\]: expected a list of samples \(dicts\), got dict"):
        FlattenedDataset([[{"image": 0}], {"image": 1}])
    with pytest.raises(TypeError, match=r"dataset\[0\]"):
        FlattenedDataset([["image"]])
