"""Nucleus/boundary targets and their inversion by the marker watershed."""

import numpy as np
import pytest
import torch
from helpers import touching_ellipses

from common.metrics import match_instances
from common.postprocess import BoundaryWatershed, watershed_instances
from common.transforms import InstanceToBoundaryTargetsd, instance_to_boundary_targets


def test_boundary_lies_only_where_two_nuclei_touch():
    labels = np.zeros((10, 16), np.int32)
    labels[2:8, 1:6] = 4
    labels[2:8, 6:11] = 9  # touches nucleus 4 along the column 5 | 6
    labels[2:8, 13:16] = 2  # isolated
    targets = instance_to_boundary_targets(labels, boundary_width=1)
    assert targets.shape == (2, 10, 16) and targets.dtype == torch.float32
    assert torch.equal(targets[0], torch.as_tensor(labels > 0, dtype=torch.float32))
    boundary = targets[1].numpy().astype(bool)
    expected = np.zeros_like(boundary)
    expected[2:8, 5:7] = True  # one pixel on each side of the contact
    assert np.array_equal(boundary, expected)


def test_boundary_width_widens_the_band():
    labels = np.zeros((10, 20), np.int32)
    labels[:, :10], labels[:, 10:] = 1, 2
    widths = [int(instance_to_boundary_targets(labels, w)[1, 0].sum()) for w in (1, 2, 3)]
    assert widths == [2, 4, 6]


def test_targets_on_the_device_and_in_the_dictionary_transform():
    labels = torch.as_tensor(touching_ellipses((64, 64), n=10, seed=1))[None]
    out = InstanceToBoundaryTargetsd(keys="label", boundary_width=2)({"label": labels})["label"]
    assert out.shape == (2, 64, 64) and out.device == labels.device


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="instance label image"):
        instance_to_boundary_targets(np.zeros((2, 3, 4, 4), int))
    with pytest.raises(TypeError, match="fractional"):
        instance_to_boundary_targets(np.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="boundary_width"):
        instance_to_boundary_targets(np.zeros((4, 4), int), boundary_width=0)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("boundary_width", [1, 2, 3])
def test_targets_then_watershed_rebuild_touching_nuclei(seed, boundary_width):
    labels = touching_ellipses((256, 256), n=40, radius=(7, 14), seed=seed, min_size=100)
    targets = instance_to_boundary_targets(labels, boundary_width)
    assert targets[1].sum() > 0, "the scene must have touching nuclei"
    rebuilt = watershed_instances(targets[0], targets[1], min_marker_size=10)
    result = match_instances(labels, rebuilt.numpy())
    assert result["f1"] >= 0.99
    assert result["mean_iou"] >= 0.95


def test_published_landscape_is_selectable_and_less_exact():
    labels = touching_ellipses((256, 256), n=40, radius=(7, 14), seed=0, min_size=100)
    targets = instance_to_boundary_targets(labels, 2)
    marker = match_instances(labels, watershed_instances(targets[0], targets[1], min_marker_size=10).numpy())
    published = watershed_instances(targets[0], targets[1], min_marker_size=10, energy="foreground_distance")
    assert match_instances(labels, published.numpy())["mean_iou"] < marker["mean_iou"]


def test_watershed_output_types_and_errors():
    probabilities = torch.zeros(2, 32, 32)
    probabilities[0, 4:12, 4:12] = 0.9
    probabilities[0, 16:30, 16:30] = 0.9
    probabilities[0, 20:22, 20:22] = 0.1  # a hole: filled
    labels = BoundaryWatershed()(probabilities)
    assert labels.shape == (1, 32, 32) and labels.dtype == torch.int32
    assert sorted(torch.unique(labels).tolist()) == [0, 1, 2]
    assert labels[0, 21, 21] == labels[0, 17, 17]
    assert watershed_instances(np.zeros((8, 8)), np.zeros((8, 8))).max() == 0  # empty image: no objects
    with pytest.raises(ValueError, match="NaN"):
        watershed_instances(np.full((8, 8), np.nan), np.zeros((8, 8)))
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        BoundaryWatershed()(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="energy"):
        watershed_instances(np.zeros((8, 8)), np.zeros((8, 8)), energy="gradient")
