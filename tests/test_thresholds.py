"""Histogram thresholds (Otsu, triangle, Huang, maximum entropy), ball morphology and the threshold baseline.

The reference is SimpleITK itself (a test-only dependency): the LIVECell baseline ran its filters with their
default settings, so every mask and threshold here must equal theirs exactly, on 8-bit images (ITK bins them
over ``[-0.5, 255.5]``) and on float images (over each image's range).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.baselines import ThresholdBaseline
from common.postprocess.morphology import binary_dilation, binary_erosion, disk
from common.postprocess.thresholds import ITK_DEFAULT_BINS, image_histograms, threshold_images

sitk = pytest.importorskip("SimpleITK", reason="SimpleITK (the `test` extra) is the reference for these tests")

FILTERS = {
    "otsu": sitk.OtsuThresholdImageFilter,
    "triangle": sitk.TriangleThresholdImageFilter,
    "huang": sitk.HuangThresholdImageFilter,
    "max_entropy": sitk.MaximumEntropyThresholdImageFilter,
}
UINT8_RANGE = (-0.5, 255.5)
SEEDS = range(12)


def phase_image(seed: int, shape=(52, 70)) -> np.ndarray:
    """uint8 phase-contrast-like image: a noisy grey background, darker cells with bright halos."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(rng.uniform(100, 140), rng.uniform(3, 10), shape)
    for _ in range(int(rng.integers(3, 12))):
        cy, cx, radius = rng.uniform(0, shape[0]), rng.uniform(0, shape[1]), rng.uniform(3, 9)
        distance = np.hypot(yy - cy, xx - cx)
        image += np.where(distance < radius, rng.uniform(-40, -10), 0.0)
        image += np.where(abs(distance - radius) < 1.2, rng.uniform(20, 50), 0.0)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def sitk_threshold(image: np.ndarray, method: str) -> tuple[np.ndarray, float]:
    """SimpleITK's mask (inside 1 = at or below the threshold) and threshold, default settings."""
    thresholder = FILTERS[method]()
    thresholder.SetInsideValue(1)
    thresholder.SetOutsideValue(0)
    mask = sitk.GetArrayFromImage(thresholder.Execute(sitk.GetImageFromArray(image))).astype(bool)
    return mask, thresholder.GetThreshold()


def test_default_bin_counts_are_simpleitks():
    assert {method: FILTERS[method]().GetNumberOfHistogramBins() for method in FILTERS} == ITK_DEFAULT_BINS


@pytest.mark.parametrize("method", sorted(FILTERS))
def test_masks_equal_simpleitk_on_8_bit_images(method):
    images = np.stack([phase_image(seed) for seed in SEEDS])
    masks = threshold_images(torch.from_numpy(images)[:, None].float(), method, value_range=UINT8_RANGE)
    thresholds = set()
    for image, mask in zip(images, masks[:, 0].numpy()):
        expected, threshold = sitk_threshold(image, method)
        np.testing.assert_array_equal(mask, expected)
        thresholds.add(threshold)
    assert len(thresholds) > 3  # the images do differ


@pytest.mark.parametrize("method", sorted(FILTERS))
def test_masks_equal_simpleitk_on_float_images(method):
    """Float images: ITK bins each over its own range; the threshold is compared in float32 as ITK does."""
    images = np.stack([(phase_image(seed) / 255.0 * 0.9 + 0.05).astype(np.float32) for seed in SEEDS])
    images[::3] += np.random.default_rng(0).normal(0, 1e-3, images[::3].shape).astype(np.float32)  # not on a grid
    masks = threshold_images(torch.from_numpy(images)[:, None], method)
    for image, mask in zip(images, masks[:, 0].numpy()):
        np.testing.assert_array_equal(mask, sitk_threshold(image, method)[0])


def test_other_bin_counts_and_bright_foreground():
    image = phase_image(3)
    for method, thresholder in FILTERS.items():
        reference = thresholder()
        reference.SetNumberOfHistogramBins(64)
        reference.SetInsideValue(0)
        reference.SetOutsideValue(1)
        expected = sitk.GetArrayFromImage(reference.Execute(sitk.GetImageFromArray(image))).astype(bool)
        bright = threshold_images(torch.from_numpy(image)[None, None].float(), method, bins=64,
                                  foreground="bright", value_range=UINT8_RANGE)  # fmt: skip
        np.testing.assert_array_equal(bright[0, 0].numpy(), expected, err_msg=method)


def test_histograms_bin_like_itk():
    images = torch.stack([torch.arange(12.0).reshape(1, 3, 4), 100 + 5 * torch.arange(12.0).reshape(1, 3, 4)])
    counts, edges = image_histograms(images, bins=12)
    assert counts.tolist() == [[1.0] * 12] * 2  # the maximum falls in the last bin, within the 1 % margin
    assert edges[0, -1].item() == pytest.approx(11 + 11 / 12 / 100)
    counts, edges = image_histograms(torch.tensor([[0.0, 1, 2, 255]]), bins=128, value_range=UINT8_RANGE)
    assert counts[0, 0] == 2 and counts[0, 1] == 1 and counts[0, 127] == 1 and edges[0, 1] == 1.5


def test_bad_threshold_arguments_are_named():
    with pytest.raises(ValueError, match="method"):
        threshold_images(torch.rand(1, 1, 4, 4), "renyi")
    with pytest.raises(ValueError, match="foreground"):
        threshold_images(torch.rand(1, 1, 4, 4), "otsu", foreground="cells")
    with pytest.raises(ValueError, match="bins"):
        image_histograms(torch.rand(1, 1, 4, 4), bins=1)
    with pytest.raises(ValueError, match="value_range"):
        image_histograms(torch.rand(1, 1, 4, 4), bins=8, value_range=(1.0, 0.0))


# ------------------------------------------------------------------------------------------- morphology


def test_ball_equals_itks_kernel():
    for radius in (1, 3, 9, 11):
        point = np.zeros((2 * radius + 3,) * 2, np.uint8)
        point[radius + 1, radius + 1] = 1
        kernel = sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(point), [radius] * 2))
        np.testing.assert_array_equal(kernel[1:-1, 1:-1], disk(radius).numpy())
    assert disk(9).sum() == 293
    with pytest.raises(ValueError, match="radius"):
        disk(-1)


@pytest.mark.parametrize("radius", [1, 3, 9, 11])
def test_dilation_and_erosion_equal_simpleitk(radius):
    rng = np.random.default_rng(radius)
    for density in (0.05, 0.4, 0.8):
        mask = (rng.random((40, 50)) < density).astype(np.uint8)
        mask[:6, :6] = 1  # an object on the border
        image = sitk.GetImageFromArray(mask)
        tensor = torch.from_numpy(mask)[None, None]
        np.testing.assert_array_equal(
            binary_dilation(tensor, radius)[0, 0].numpy(),
            sitk.GetArrayFromImage(sitk.BinaryDilate(image, [radius] * 2)).astype(bool),
        )
        np.testing.assert_array_equal(
            binary_erosion(tensor, radius)[0, 0].numpy(),
            sitk.GetArrayFromImage(sitk.BinaryErode(image, [radius] * 2)).astype(bool),
        )


# ------------------------------------------------------------------------------------------- the baseline


def test_baseline_equals_the_published_simpleitk_pipeline():
    """Each channel equals the original's: SimpleITK filter, then BinaryDilate(9) and BinaryErode(11)."""
    images = np.stack([phase_image(seed, shape=(60, 80)) for seed in range(4)])
    baseline = ThresholdBaseline(value_range=UINT8_RANGE)
    assert baseline.names == ["otsu", "otsu+closing", "triangle", "triangle+closing", "huang", "huang+closing",
                              "max_entropy", "max_entropy+closing"]  # fmt: skip
    out = baseline(torch.from_numpy(images)[:, None].float())
    assert out.shape == (4, 8, 60, 80) and out.dtype == torch.float32
    for image, channels in zip(images, out.numpy()):
        expected = []
        for _method, thresholder in FILTERS.items():
            reference = thresholder()
            reference.SetInsideValue(1)
            reference.SetOutsideValue(0)
            mask = reference.Execute(sitk.GetImageFromArray(image))
            closed = sitk.BinaryErode(sitk.BinaryDilate(mask, [9, 9]), [11, 11])
            expected += [sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(closed)]
        np.testing.assert_array_equal(channels, np.stack(expected).astype(np.float32))
    assert list(ThresholdBaseline(["huang"], closing=[True, False])(out[:1, :1]).shape) == [1, 2, 60, 80]


def test_baseline_rejects_bad_arguments():
    with pytest.raises(ValueError, match="methods"):
        ThresholdBaseline(["otsu", "sauvola"])
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        ThresholdBaseline()(torch.rand(1, 3, 8, 8))
