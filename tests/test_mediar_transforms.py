"""MEDIAR's transforms do what they promise: which pixels change, labels untouched, probabilities respected."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage

from common.postprocess import RemoveBorderInstances, RemoveBorderInstancesd
from common.transforms import (
    BoundaryExclusion,
    BoundaryExclusiond,
    NonZeroPercentileNormalize,
    NonZeroPercentileNormalized,
    RandCellAwareIntensity,
    RandCellAwareIntensityd,
)
from tests.support.shapes import random_cells


@pytest.fixture(scope="module")
def labels():
    return torch.from_numpy(random_cells((64, 72), 30, seed=5)[None]).to(torch.int32)  # (1, H, W)


# ------------------------------------------------------------------------------------ non-zero percentiles


def test_percentiles_of_non_zero_pixels_map_to_zero_and_one():
    rng = np.random.default_rng(0)
    image = rng.integers(100, 4000, size=(3, 40, 50)).astype(np.uint16)
    image[:, :10] = 0  # a black band must not pull the lower percentile down
    low, high = np.percentile(image[image > 0], [0.0, 99.5])
    expected = np.clip((image.astype(np.float64) - low) / (high - low), 0, 1)
    out = NonZeroPercentileNormalize(levels=None)(image)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0
    # MEDIAR's 8-bit intermediate: values floored to multiples of 1/255
    eight_bit = NonZeroPercentileNormalize()(torch.from_numpy(image.astype(np.int32)))
    np.testing.assert_allclose(eight_bit.numpy(), np.floor(expected * 255) / 255, atol=1e-6)


def test_channel_wise_percentiles_and_degenerate_images():
    image = np.zeros((2, 8, 8), np.float32)
    image[0] = np.arange(64).reshape(8, 8)
    image[1] = 5.0 * np.arange(64).reshape(8, 8)
    joint = NonZeroPercentileNormalize(levels=None)(image)
    per_channel = NonZeroPercentileNormalize(levels=None, channel_wise=True)(image)
    assert joint[0].max() < 0.25 and joint[1].max() == 1.0
    np.testing.assert_allclose(per_channel[0], per_channel[1], atol=1e-6)
    assert not NonZeroPercentileNormalize()(np.zeros((3, 5, 5))).any()
    assert not NonZeroPercentileNormalize()(np.full((3, 5, 5), 7.0)).any()
    with pytest.raises(ValueError, match="lower, upper"):
        NonZeroPercentileNormalize(lower=50, upper=10)
    data = NonZeroPercentileNormalized("image")({"image": MetaTensor(torch.from_numpy(image), meta={"x": 1})})
    assert data["image"].meta["x"] == 1


# ------------------------------------------------------------------------------------ cell-aware intensity


def test_a_fraction_of_cells_is_scaled_by_one_factor(labels):
    image = torch.rand(3, *labels.shape[1:]) + 0.1
    transform = RandCellAwareIntensity(prob=1.0, fraction=0.4, factors=(0.2, 0.7)).set_random_state(0)
    before = labels.clone()
    out = transform(image, labels)
    assert torch.equal(labels, before)  # labels untouched
    ratio = out / image
    changed = ~torch.isclose(ratio, torch.ones_like(ratio))
    ids = torch.unique(labels[0])[1:]
    changed_ids = torch.unique(labels[0][changed.any(0)])
    assert 0 not in changed_ids  # background never changes
    assert changed_ids.numel() == int(0.4 * ids.numel())
    for cell in changed_ids:  # whole cells, all channels, one factor in [1.2, 1.7]
        inside = (labels[0] == cell).expand_as(image)
        assert changed[inside].all()
    factors = ratio[changed]
    assert torch.allclose(factors, factors[0]) and 1.2 <= factors[0] <= 1.7


def test_probability_is_respected_and_seeded_runs_repeat(labels):
    image = torch.rand(3, *labels.shape[1:])
    transform = RandCellAwareIntensity(prob=0.25).set_random_state(1)
    applied = sum(not torch.equal(transform(image, labels), image) for _ in range(400))
    assert 70 <= applied <= 130  # 100 expected
    first = RandCellAwareIntensityd("image", prob=1.0).set_random_state(7)({"image": image, "label": labels})
    again = RandCellAwareIntensityd("image", prob=1.0).set_random_state(7)({"image": image, "label": labels})
    assert torch.equal(first["image"], again["image"]) and first["label"] is labels
    never = RandCellAwareIntensityd("image", prob=0.0)({"image": image, "label": labels})
    assert never["image"] is image
    with pytest.raises(ValueError, match=r"\(C, H, W\) and \(1, H, W\)"):
        RandCellAwareIntensity(prob=1.0)(image, labels[:, :10])


# ------------------------------------------------------------------------------------ boundary exclusion


def reference_boundary_exclusion(labels, min_area, border):
    """From the definition, with SciPy: cell pixels whose 4-neighbourhood holds another value."""
    cross = ndimage.generate_binary_structure(2, 1)
    highest = ndimage.maximum_filter(labels, footprint=cross, mode="nearest")
    lowest = ndimage.minimum_filter(labels, footprint=cross, mode="nearest")
    ids, counts = np.unique(labels, return_counts=True)
    small = np.isin(labels, ids[counts < min_area])
    frame = np.ones(labels.shape, bool)
    frame[border : labels.shape[0] - border, border : labels.shape[1] - border] = False
    boundary = (highest != lowest) & (labels > 0) & ~small & ~frame
    return np.where(boundary, 0, labels), boundary


def test_boundary_pixels_of_cells_become_background(labels):
    out = BoundaryExclusion(min_area=40, border=2)(labels.numpy())
    expected, boundary = reference_boundary_exclusion(labels[0].numpy(), 40, 2)
    assert isinstance(out, np.ndarray) and out.dtype == np.int32
    np.testing.assert_array_equal(out[0], expected)
    assert boundary.sum() > 100  # the test image has boundaries to exclude
    small = [i for i, c in zip(*np.unique(labels, return_counts=True)) if 0 < c < 40]
    assert small and all((out[0] == i).sum() == (labels[0].numpy() == i).sum() for i in small)


def test_ignore_mode_marks_excluded_pixels(labels):
    out = BoundaryExclusiond("label", min_area=0, border=0, mode="ignore")({"label": labels.to(torch.uint8)})["label"]
    assert out.dtype == torch.int32  # unsigned labels cannot hold -1
    _, boundary = reference_boundary_exclusion(labels[0].numpy(), 0, 0)
    assert torch.equal(out[0] == -1, torch.from_numpy(boundary))
    assert torch.equal(out[0][out[0] >= 0], labels[0][out[0] >= 0])
    with pytest.raises(ValueError, match="integer instance labels"):
        BoundaryExclusion()(labels.float())


# ------------------------------------------------------------------------------------ border cells


def test_cells_touching_the_two_pixel_frame_are_removed():
    labels = np.zeros((1, 20, 20), np.uint16)
    labels[0, 1:5, 5:9] = 1  # reaches row 1: inside the 2-pixel frame
    labels[0, 2:6, 12:16] = 2  # starts at row 2: clear of it
    labels[0, 8:12, 14:18] = 3  # ends at column 17: clear of the frame (columns 18, 19)
    labels[0, 13:17, 15:19] = 4  # reaches column 18: in the frame
    out = RemoveBorderInstances(width=2)(labels)
    assert sorted(np.unique(out)) == [0, 2, 3] and out.dtype == np.uint16
    pred = torch.from_numpy(labels.astype(np.int32))
    data = RemoveBorderInstancesd(["pred", "label"])({"pred": pred, "label": labels})
    assert sorted(torch.unique(data["pred"]).tolist()) == [0, 2, 3]
