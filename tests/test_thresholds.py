"""Histogram thresholds (Otsu, triangle, Huang, maximum entropy), disk morphology and the threshold baseline.

Otsu and triangle are checked against scikit-image; Huang and Kapur's maximum entropy, which scikit-image lacks,
against direct loop transcriptions of their published definitions (as ImageJ's AutoThresholder states them).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.filters import threshold_otsu, threshold_triangle

from common.networks import ThresholdBaseline
from common.postprocess.morphology import binary_dilation, binary_erosion, disk
from common.postprocess.thresholds import (
    huang_threshold,
    image_histograms,
    max_entropy_threshold,
    otsu_threshold,
    threshold_images,
    triangle_threshold,
)


def bimodal_image(seed: int, shape=(60, 80)) -> np.ndarray:
    """uint8 image of two overlapping grey populations, spanning 0..255 so that bin = grey value."""
    rng = np.random.default_rng(seed)
    dark = rng.random(shape) < rng.uniform(0.2, 0.6)
    image = np.where(dark, rng.normal(rng.uniform(60, 110), rng.uniform(8, 25), shape),
                     rng.normal(rng.uniform(130, 190), rng.uniform(8, 25), shape))  # fmt: skip
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    image.flat[:2] = (0, 255)
    return image


def huang_reference(counts: np.ndarray) -> int:
    """Huang and Wang's fuzzy-entropy threshold, one split and one bin at a time."""
    nonzero = np.flatnonzero(counts)
    first, last = nonzero[0], nonzero[-1]
    c = last - first
    best, threshold = math.inf, first
    for t in range(first, last + 1):
        low = range(first, t + 1)
        high = range(t + 1, last + 1)
        mu0 = sum(g * counts[g] for g in low) / sum(counts[g] for g in low)
        mu1 = sum(g * counts[g] for g in high) / max(sum(counts[g] for g in high), 1e-300)
        entropy = 0.0
        for bins, mu in ((low, mu0), (high, mu1)):
            for g in bins:
                membership = 1.0 / (1.0 + abs(g - mu) / c)
                if 1e-6 <= membership <= 0.999999:
                    entropy += counts[g] * (-membership * math.log(membership) - (1 - membership) * math.log(1 - membership))
        if entropy < best:
            best, threshold = entropy, t
    return threshold


def kapur_reference(counts: np.ndarray) -> int:
    """Kapur, Sahoo and Wong's maximum-entropy threshold, one split at a time."""
    p = counts / counts.sum()
    best, threshold = -math.inf, None
    for t in range(len(p)):
        mass0, mass1 = p[: t + 1].sum(), p[t + 1 :].sum()
        if mass0 <= 1e-12 or mass1 <= 1e-12:
            continue
        entropy = -sum(q / mass0 * math.log(q / mass0) for q in p[: t + 1] if q > 0)
        entropy -= sum(q / mass1 * math.log(q / mass1) for q in p[t + 1 :] if q > 0)
        if entropy > best:
            best, threshold = entropy, t
    return threshold


SEEDS = range(6)


@pytest.mark.parametrize("method, reference", [("otsu", threshold_otsu), ("triangle", threshold_triangle)])
def test_otsu_and_triangle_masks_equal_scikit_image(method, reference):
    images = np.stack([bimodal_image(seed) for seed in SEEDS])
    masks = threshold_images(torch.from_numpy(images)[:, None], method, bins=256, foreground="bright")
    for image, mask in zip(images, masks[:, 0].numpy()):
        np.testing.assert_array_equal(mask, image > reference(image))


def test_huang_and_max_entropy_equal_their_definitions():
    counts = torch.stack([image_histograms(torch.from_numpy(bimodal_image(seed))[None], 256)[0][0] for seed in SEEDS])
    counts[2, 200:] = 0  # an empty tail changes first/last
    counts[3, :40] = 0
    expected_huang = [huang_reference(row.numpy()) for row in counts]
    expected_kapur = [kapur_reference(row.numpy()) for row in counts]
    assert huang_threshold(counts).tolist() == expected_huang
    assert max_entropy_threshold(counts).tolist() == expected_kapur
    assert len(set(expected_huang)) > 1 and len(set(expected_kapur)) > 1  # the cases differ


def test_thresholds_split_two_separated_populations_between_them():
    counts = torch.zeros(1, 64)
    counts[0, 10:16] = torch.tensor([5.0, 20, 40, 40, 20, 5])
    counts[0, 40:46] = torch.tensor([3.0, 12, 25, 25, 12, 3])
    for method in (otsu_threshold, huang_threshold, triangle_threshold):
        assert 15 <= int(method(counts)) < 40, method.__name__
    # maximum entropy is not a valley finder: here the most even split cuts into the first population
    assert int(max_entropy_threshold(counts)) == kapur_reference(counts[0].numpy()) < 15


def test_histograms_are_per_image_and_dark_foreground_is_the_complement():
    images = torch.stack([torch.arange(12.0).reshape(1, 3, 4), 100 + 5 * torch.arange(12.0).reshape(1, 3, 4)])
    counts, index = image_histograms(images, bins=12)
    assert counts.tolist() == [[1.0] * 12] * 2 and torch.equal(index[0], index[1])
    dark = threshold_images(images, "otsu", bins=12)
    bright = threshold_images(images, "otsu", bins=12, foreground="bright")
    assert torch.equal(dark, ~bright) and dark[0].sum() == 6


def test_bad_threshold_arguments_are_named():
    with pytest.raises(ValueError, match="method"):
        threshold_images(torch.rand(1, 1, 4, 4), "renyi")
    with pytest.raises(ValueError, match="foreground"):
        threshold_images(torch.rand(1, 1, 4, 4), "otsu", foreground="cells")
    with pytest.raises(ValueError, match="bins"):
        image_histograms(torch.rand(1, 1, 4, 4), bins=1)


# ------------------------------------------------------------------------------------------- morphology


@pytest.mark.parametrize("radius", [1, 3, 9])
def test_dilation_and_erosion_equal_scipy_with_itk_borders(radius):
    rng = np.random.default_rng(radius)
    masks = ndimage.binary_opening(rng.random((2, 1, 40, 50)) < 0.3, np.ones((1, 1, 2, 2)))
    masks[0, 0, :6, :6] = True  # an object on the border
    structure = disk(radius).bool().numpy()[None, None]
    dilated = binary_dilation(torch.from_numpy(masks), radius).numpy()
    eroded = binary_erosion(torch.from_numpy(masks), radius).numpy()
    np.testing.assert_array_equal(dilated, ndimage.binary_dilation(masks, structure))
    np.testing.assert_array_equal(eroded, ndimage.binary_erosion(masks, structure, border_value=1))


def test_disk_shape():
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert disk(9).sum() == sum(1 for y in range(-9, 10) for x in range(-9, 10) if y * y + x * x <= 81)
    with pytest.raises(ValueError, match="radius"):
        disk(-1)


# ------------------------------------------------------------------------------------------- the baseline


def dark_blobs(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 1, H, W) grey image with dark discs on a bright noisy background, and the discs' mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:96, :96]
    mask = np.zeros((96, 96), bool)
    for _ in range(6):
        cy, cx, r = rng.integers(10, 86, 2).tolist() + [int(rng.integers(5, 10))]
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    image = np.where(mask, 80.0, 160.0) + rng.normal(0, 12, mask.shape)
    return torch.from_numpy(image).float()[None, None], torch.from_numpy(mask)[None, None]


def test_baseline_channels_follow_methods_and_closing():
    baseline = ThresholdBaseline()
    assert baseline.names == ["otsu", "otsu+closing", "triangle", "triangle+closing", "huang", "huang+closing",
                              "max_entropy", "max_entropy+closing"]  # fmt: skip
    image, mask = dark_blobs(0)
    out = baseline(image)
    assert out.shape == (1, 8, 96, 96) and out.dtype == torch.float32 and set(out.unique().tolist()) <= {0.0, 1.0}
    plain = threshold_images(image, "huang")
    torch.testing.assert_close(out[:, 4:5], plain.float())
    torch.testing.assert_close(out[:, 5:6], binary_erosion(binary_dilation(plain, 9), 11).float())
    assert list(ThresholdBaseline(["huang"], closing=[True, False])(image)[0, :, 0, 0].shape) == [2]
    otsu = out[0, 0].bool()
    assert (otsu & mask[0, 0]).sum() / (otsu | mask[0, 0]).sum() > 0.7  # dark discs found


def test_baseline_rejects_bad_arguments():
    with pytest.raises(ValueError, match="methods"):
        ThresholdBaseline(["otsu", "sauvola"])
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        ThresholdBaseline()(torch.rand(1, 3, 8, 8))
