"""Whole-image statistics computed block by block make blockwise normalisation equal in-memory normalisation."""

import dask
import dask.array as da
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import ScaleIntensityd, ScaleIntensityRanged

from common.ops import percentile
from common.slides import KeyPrefix, image_statistics, mean_std, min_max, percentiles
from common.transforms import (
    AsChannels,
    AsChannelsd,
    NonZeroPercentileNormalize,
    NonZeroPercentileNormalized,
    ScalePercentiles,
    ScalePercentilesd,
    Whiten,
    Whitend,
)

SHAPE = (2, 67, 53)
CHUNKS = [(1, 16, 16), (2, 25, 20), SHAPE]  # per-channel blocks, non-divisible blocks, one block


def _image(dtype, shape=SHAPE, seed=0) -> np.ndarray:
    """Random integer-valued image of ``dtype`` (float32: integers of a uint16 range), with a band of zeros."""
    rng = np.random.default_rng(seed)
    high = 256 if dtype == np.uint8 else 65536
    image = rng.integers(0, high, size=shape).astype(dtype)
    image[:, :5] = 0
    return image


def _blockwise(image: np.ndarray, chunks, function) -> np.ndarray:
    """``function`` applied to each (C, y, x) block of ``image`` (all channels per block), blocks reassembled."""
    rows = []
    for y in range(0, image.shape[1], chunks[1]):
        row = [function(image[:, y : y + chunks[1], x : x + chunks[2]]) for x in range(0, image.shape[2], chunks[2])]
        rows.append(np.concatenate([np.asarray(block) for block in row], axis=2))
    return np.concatenate(rows, axis=1)


def _arrays(image, chunks):
    return da.from_array(image, chunks=chunks)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("chunks", CHUNKS)
def test_percentile_scaling_with_slide_percentiles_equals_the_whole_image(dtype, chunks):
    image = _image(dtype)
    expected = ScalePercentiles(0.1, 99.9, clip=True)(image)
    statistics = image_statistics(_arrays(image, chunks), None, "percentiles", lower=0.1, upper=99.9)
    flat = torch.from_numpy(image.astype(np.float32)).flatten(-2)
    reference = np.stack([percentile(flat, q).numpy() for q in (0.1, 99.9)], axis=1)
    np.testing.assert_array_equal(statistics, reference)  # bit for bit, and close to NumPy's
    np.testing.assert_allclose(statistics, np.percentile(image.reshape(2, -1), [0.1, 99.9], axis=1).T, rtol=1e-6)
    blockwise = _blockwise(image, chunks, ScalePercentiles(0.1, 99.9, clip=True, statistics=statistics))
    np.testing.assert_array_equal(blockwise, expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("chunks", CHUNKS)
def test_non_zero_percentiles_after_as_channels_equal_the_whole_image(dtype, chunks):
    """MEDIAR: percentiles of the non-zero pixels of the 3-channel image AsChannelsd makes of a grey one."""
    image = _image(dtype, shape=(1, *SHAPE[1:]))
    expected = NonZeroPercentileNormalized("image")(AsChannelsd("image", 3)({"image": image}))["image"]
    prefix = KeyPrefix([AsChannelsd("image", 3)])
    statistics = image_statistics(_arrays(image, (1, *chunks[1:])), prefix, "nonzero_percentiles", lower=0, upper=99.5)
    three = np.repeat(image, 3, axis=0)  # the 3 channels AsChannels makes count thrice
    np.testing.assert_allclose(statistics, np.percentile(three[three != 0], [0, 99.5]), rtol=1e-6)
    normalise = NonZeroPercentileNormalize(0, 99.5, statistics=statistics)
    blockwise = _blockwise(image, (1, *chunks[1:]), lambda block: normalise(AsChannels(3)(block)))
    np.testing.assert_array_equal(blockwise, expected)


@pytest.mark.parametrize("chunks", CHUNKS)
def test_channel_wise_non_zero_percentiles_of_non_integer_floats_are_exact(chunks):
    """Values that are not integers go through the exact radix selection (two passes for float32)."""
    image = np.random.default_rng(1).gamma(2.0, 100.0, size=SHAPE).astype(np.float32)
    image[1, 10:] = 0
    transform = NonZeroPercentileNormalize(0.5, 99.5, channel_wise=True, levels=None)
    statistics = percentiles(_arrays(image, chunks), (0.5, 99.5), nonzero=True, channel_wise=True)
    for c in range(2):
        values = torch.from_numpy(image[c][image[c] != 0])
        assert statistics[c].tolist() == [percentile(values, 0.5).item(), percentile(values, 99.5).item()]
    blockwise = _blockwise(image, chunks, NonZeroPercentileNormalize(0.5, 99.5, True, None, statistics))
    np.testing.assert_array_equal(blockwise, transform(image))


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_percentiles_of_wide_types_are_exact(dtype):
    rng = np.random.default_rng(2)
    image = (rng.normal(size=SHAPE) * 1e8).astype(dtype)
    statistics = percentiles(_arrays(image, (1, 20, 30)), (0.0, 0.1, 50.0, 99.9, 100.0))
    tensor = torch.from_numpy(image).to(torch.float64 if dtype == np.float64 else torch.float32).flatten(-2)
    reference = np.stack([percentile(tensor, q).double().numpy() for q in (0.0, 0.1, 50.0, 99.9, 100.0)], axis=1)
    np.testing.assert_array_equal(statistics, reference)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("chunks", CHUNKS)
def test_whitening_with_slide_mean_and_std_equals_the_whole_image(dtype, chunks):
    """LMC: ScaleIntensityRanged (0..65535 -> 0..1, not integer-valued) before whitening, as the prefix."""
    image = _image(dtype)
    scale = ScaleIntensityRanged("image", a_min=0.0, a_max=65535.0, b_min=0.0, b_max=1.0)
    expected = Whitend("image")(scale({"image": image}))["image"]
    statistics = image_statistics(_arrays(image, chunks), KeyPrefix([scale]), "mean_std")
    scaled = scale({"image": image})["image"].numpy().astype(np.float64).reshape(2, -1)
    np.testing.assert_allclose(statistics, np.stack([scaled.mean(1), scaled.std(1, ddof=1)], 1), rtol=1e-12)
    whiten = Whiten(statistics=statistics)
    blockwise = _blockwise(image, chunks, lambda block: whiten(scale({"image": block})["image"]))
    np.testing.assert_array_equal(blockwise, expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("chunks", CHUNKS)
def test_scale_intensity_range_with_slide_min_max_equals_scale_intensity(dtype, chunks):
    """LIVECell: the whole-slide overlay swaps ScaleIntensityd for ScaleIntensityRanged(a_min, a_max)."""
    image = _image(dtype) + 3  # a minimum above zero
    expected = ScaleIntensityd("image")({"image": image})["image"]
    a_min, a_max = image_statistics(_arrays(image, chunks), None, "min_max")
    assert (a_min, a_max) == (float(image.min()), float(image.max()))
    ranged = ScaleIntensityRanged("image", a_min=a_min, a_max=a_max, b_min=0.0, b_max=1.0)
    blockwise = _blockwise(image, chunks, lambda block: ranged({"image": block})["image"])
    np.testing.assert_array_equal(blockwise, expected)
    assert ranged({"image": image})["image"].dtype == expected.dtype == torch.float32


@pytest.mark.parametrize("value", [0, 7])
def test_constant_images_behave_as_the_transforms_do(value):
    image = np.full(SHAPE, value, np.uint16)
    array = _arrays(image, (1, 16, 16))
    for transform, statistics in [
        (ScalePercentiles(0.1, 99.9, clip=True), image_statistics(array, None, "percentiles", lower=0.1, upper=99.9)),
        (NonZeroPercentileNormalize(), image_statistics(array, None, "nonzero_percentiles", lower=0, upper=99.5)),
        (Whiten(), image_statistics(array, None, "mean_std")),
    ]:
        transform.statistics = statistics
        with_statistics = transform(image)
        transform.statistics = None
        np.testing.assert_array_equal(with_statistics, transform(image))
        assert not with_statistics.any()
    assert np.isnan(image_statistics(array, None, "nonzero_percentiles", lower=0, upper=99.5)).all() == (value == 0)
    np.testing.assert_array_equal(mean_std(array), [[value, 0.0]] * 2)
    np.testing.assert_array_equal(min_max(array, channel_wise=True), [[value, value]] * 2)
    with pytest.warns(Warning, match="Divide by zero"):
        ranged = ScaleIntensityRanged("image", *min_max(array), b_min=0.0, b_max=1.0)({"image": image})["image"]
    np.testing.assert_array_equal(ranged, ScaleIntensityd("image")({"image": image})["image"])


def test_dictionary_transforms_take_statistics_and_keep_meta():
    image = MetaTensor(torch.from_numpy(_image(np.float32)), meta={"filename_or_obj": "a.tif"})
    array = _arrays(image.numpy(), (2, 30, 30))
    for transform, kind, kwargs in [
        (ScalePercentilesd, "percentiles", {"lower": 1.0, "upper": 99.0}),
        (NonZeroPercentileNormalized, "nonzero_percentiles", {"lower": 1.0, "upper": 99.0}),
        (Whitend, "mean_std", {}),
    ]:
        statistics = image_statistics(array, None, kind, **kwargs)
        out = transform("image", **kwargs, statistics=statistics)({"image": image})["image"]
        assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "a.tif"
        np.testing.assert_array_equal(out, transform("image", **kwargs)({"image": image})["image"])
        with pytest.raises(ValueError, match="key 'image'.*statistics"):
            transform("image", **kwargs, statistics=[1.0, 2.0, 3.0])({"image": image})


def test_bad_input_is_refused_naming_the_problem():
    image = _image(np.float32)
    image[1, 40, 30] = np.nan
    with pytest.raises(ValueError, match=r"NaN in the block at \(y, x\) = \(32, 30\)"):
        image_statistics(_arrays(image, (2, 16, 15)), None, "mean_std")
    with pytest.raises(ValueError, match="NaN"):
        percentiles(_arrays(image, (2, 16, 15)), (1.0, 99.0))
    with pytest.raises(ValueError, match="prefix_transform: expected a pointwise"):
        min_max(_arrays(_image(np.uint8), (2, 16, 16)), lambda block: block[:, ::2])
    with pytest.raises(ValueError, match="kind"):
        image_statistics(_arrays(_image(np.uint8), (2, 16, 16)), None, "median")
    with pytest.raises(ValueError, match="lower=..., upper="):
        image_statistics(_arrays(_image(np.uint8), (2, 16, 16)), None, "percentiles")


def test_blocks_are_computed_a_batch_at_a_time(monkeypatch):
    """Bounded memory: at most ``batch`` blocks are handed to the scheduler at once, never the whole image."""
    sizes = []
    compute = dask.compute

    def counting(*args, **kwargs):
        sizes.append(len(args))
        return compute(*args, **kwargs)

    monkeypatch.setattr(dask, "compute", counting)
    statistics = mean_std(_arrays(_image(np.uint16), (1, 16, 16)), batch=4)
    assert max(sizes) == 4 and sum(sizes) == 5 * 4  # 5 x 4 spatial blocks, channels read together
    np.testing.assert_allclose(statistics[:, 0], _image(np.uint16).reshape(2, -1).mean(1), rtol=1e-12)
