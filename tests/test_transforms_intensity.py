"""Percentiles, whitening and percentile scaling against NumPy computations."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from common.ops import percentile, scale_percentiles, whiten
from common.transforms import Quantised, ScalePercentilesd, Whitend, quantise


@pytest.mark.parametrize("shape", [(7, 5), (2, 3, 17, 23), (1, 1, 1)])
@pytest.mark.parametrize("q", [0.0, 0.01, 2.0, 50.0, 99.8, 99.9, 100.0])
def test_percentile_matches_numpy(shape, q):
    x = np.random.default_rng(1).normal(size=shape).astype(np.float64)
    expected = np.percentile(x.reshape(*shape[:-2], -1), q, axis=-1)
    result = percentile(torch.from_numpy(x).flatten(-2), q)
    assert result.shape == shape[:-2]
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_percentile_of_integer_images_with_ties():
    x = np.random.default_rng(2).integers(0, 4, size=(3, 40, 30)).astype(np.uint16)
    for q in (2.0, 99.8):
        np.testing.assert_allclose(
            percentile(torch.from_numpy(x.astype(np.float32)).flatten(-2), q).numpy(),
            np.percentile(x.reshape(3, -1), q, axis=-1),
            rtol=1e-6,
        )
    with pytest.raises(ValueError, match="percentile in"):
        percentile(torch.zeros(2, 2), 101)
    assert percentile(torch.tensor([1.0, 2.0, 3.0, 4.0]), 50.0) == 2.5  # a 1-D sample: a 0-d result


def test_whiten_matches_numpy_with_bessel_correction():
    x = np.random.default_rng(3).uniform(0, 1000, size=(2, 32, 24))
    expected = (x - x.mean(axis=(1, 2), keepdims=True)) / x.std(axis=(1, 2), ddof=1, keepdims=True)
    np.testing.assert_allclose(whiten(torch.from_numpy(x)).numpy(), expected, rtol=1e-10)


def test_whiten_of_a_constant_image_is_zero_and_the_dictionary_version_keeps_meta():
    assert torch.equal(whiten(torch.full((1, 8, 8), 7.0)), torch.zeros(1, 8, 8))
    image = MetaTensor(torch.arange(64, dtype=torch.int32).reshape(1, 8, 8), meta={"filename_or_obj": "a.tif"})
    out = Whitend("image")({"image": image})["image"]
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "a.tif"
    assert out.dtype == torch.float32
    assert abs(out.mean().item()) < 1e-6 and out.std().item() == pytest.approx(1.0, rel=1e-5)


def test_scale_percentiles_matches_numpy_and_clips():
    x = np.random.default_rng(4).gamma(2.0, 100.0, size=(2, 50, 40))
    low = np.percentile(x.reshape(2, -1), 0.01, axis=-1)[:, None, None]
    high = np.percentile(x.reshape(2, -1), 99.9, axis=-1)[:, None, None]
    expected = (x - low) / (high - low)
    np.testing.assert_allclose(scale_percentiles(torch.from_numpy(x), 0.01, 99.9).numpy(), expected, rtol=1e-10)
    clipped = scale_percentiles(torch.from_numpy(x), 0.01, 99.9, clip=True).numpy()
    np.testing.assert_allclose(clipped, np.clip(expected, 0, 1), rtol=1e-10)
    assert clipped.min() == 0.0 and clipped.max() == 1.0


def test_scale_percentiles_when_the_percentiles_coincide():
    sparse = torch.zeros(1, 25, 40)
    sparse[0, 3, 4] = 9.0  # 999 of 1000 pixels are 0: p2 == p99.8 == 0
    assert torch.equal(scale_percentiles(sparse, 2, 99.8, constant="keep"), sparse)
    assert torch.equal(scale_percentiles(sparse + 5, 2, 99.8), sparse)  # shifted to 0, not divided by 0
    assert torch.equal(scale_percentiles(sparse + 5, 2, 99.8, clip=True), (sparse > 0).float())
    out = ScalePercentilesd("label", 0.01, 99.9, clip=True)({"label": torch.full((1, 4, 4), 3.0)})["label"]
    assert torch.equal(out, torch.zeros(1, 4, 4))


def test_scale_percentiles_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lower < upper"):
        ScalePercentilesd("label", 99.0, 1.0)
    with pytest.raises(ValueError, match="'shift' or 'keep'"):
        scale_percentiles(torch.zeros(2, 2), 1, 99, constant="raw")


def norm_images_reference(image: np.ndarray) -> np.ndarray:
    """The DSB original's 8-bit ``norm_images`` in NumPy: 0.1 / 99.9 percentiles, clip, uint8 with rounding."""
    low, high = np.percentile(image, 0.1), np.percentile(image, 99.9)
    scaled = (np.clip(image, low, high) - low) / (high - low)
    return np.rint(scaled * 255).astype(np.uint8)


def test_quantise_matches_numpy_rounding_to_uint8():
    values = np.array([[0, 0.5, 0.499, 0.501, 1.5, 2.5, 127.5, 128.5, 254.5, 255]]) / 255.0
    expected = np.rint(values * 255).astype(np.uint8) / 255.0  # half to even, as skimage.img_as_ubyte
    np.testing.assert_array_equal(quantise(torch.as_tensor(values)).numpy(), expected)
    assert np.unique(quantise(torch.rand(1, 64, 64), bits=2).numpy()).size <= 4
    image = torch.rand(1, 8, 8, dtype=torch.float64)
    assert torch.equal(quantise(image, bits=None), image)  # switched off


def test_percentiles_then_8_bits_is_the_dsb_norm_images():
    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 400.0, size=(1, 52, 70))  # a 16-bit-like range, float64
    data = {"image": MetaTensor(torch.as_tensor(image))}
    data = ScalePercentilesd("image", lower=0.1, upper=99.9, clip=True)(data)
    out = Quantised("image", bits=8)(data)["image"]
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), norm_images_reference(image[0])[None] / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(np.rint(out.numpy() * 255), norm_images_reference(image[0])[None])


def test_quantise_rejects_unclipped_images_and_bad_bits():
    with pytest.raises(ValueError, match="clip first"):
        quantise(torch.tensor([[0.0, 1.5]]))
    with pytest.raises(ValueError, match="bits"):
        Quantised("image", bits=0)
