"""follow_flows: Euler steps along bilinearly interpolated flows, clamped to the image."""

import numpy as np
import pytest
import torch

from common.flows import follow_flows, labels_to_flows
from tests.support.shapes import random_cells


def test_constant_flow_moves_points_by_niter_steps_and_clamps():
    flows = torch.zeros((2, 20, 30))
    flows[1] = 0.5  # half a pixel to the right per step
    ends = follow_flows(flows, torch.ones((20, 30), dtype=torch.bool), niter=8).view(20, 30, 2)
    torch.testing.assert_close(ends[3, 2], torch.tensor([3.0, 6.0]), atol=1e-4, rtol=0)
    torch.testing.assert_close(ends[10, 27], torch.tensor([10.0, 29.0]), atol=1e-4, rtol=0)  # clamped


def test_interpolation_is_bilinear_between_pixel_centres():
    flows = torch.zeros((2, 4, 4))
    flows[0, :, 1] = 1.0  # column 1 moves down one pixel per step, column 2 not at all
    mask = torch.zeros((4, 4), dtype=torch.bool)
    mask[0, 1] = True
    end = follow_flows(flows, mask, niter=1, tol=0)
    torch.testing.assert_close(end, torch.tensor([[1.0, 1.0]]))
    flows[1, 0, 1] = 0.5  # and half a pixel right: later steps sample half way between the columns
    end = follow_flows(flows, mask | torch.ones_like(mask), niter=2, tol=0)[1]
    torch.testing.assert_close(end, torch.tensor([1.5, 1.5]))


def test_flows_outside_the_mask_are_ignored():
    flows = torch.ones((2, 10, 10))
    mask = torch.zeros((10, 10), dtype=torch.bool)
    mask[2:5, 2:5] = True
    ends = follow_flows(flows, mask, niter=50)
    assert ends.max() <= 5.0  # points stop where the foreground ends


def test_points_of_a_cell_converge_on_one_sink():
    labels = random_cells((96, 96), 12, seed=2)
    flows = labels_to_flows(labels)[0]
    mask = torch.from_numpy(labels > 0)
    ends = follow_flows(flows, mask)
    cell = torch.from_numpy(labels)[mask]
    for c in np.unique(labels[labels > 0]):
        spread = ends[cell == int(c)].std(0).max()
        assert spread < 1.5, (c, spread)
    assert ends.shape == (int(mask.sum()), 2)


def test_settled_points_stop_within_tolerance_of_full_stepping():
    labels = random_cells((128, 128), 25, seed=7)
    flows = labels_to_flows(labels)[0]
    mask = torch.from_numpy(labels > 0)
    early = follow_flows(flows, mask, tol=1e-3)
    full = follow_flows(flows, mask, tol=0.0)
    assert (early - full).abs().max() < 2e-2
    assert (early.round() != full.round()).any(1).float().mean() < 1e-3


def test_batch_concatenates_images_in_nonzero_order():
    labels = np.stack([random_cells((48, 48), 6, seed=s) for s in (1, 2)])
    flows = labels_to_flows(labels)
    mask = torch.from_numpy(labels > 0)
    ends = follow_flows(flows, mask)
    first = int(mask[0].sum())
    torch.testing.assert_close(ends[:first], follow_flows(flows[0], mask[0]))
    torch.testing.assert_close(ends[first:], follow_flows(flows[1], mask[1]))


def test_bad_input():
    flows = torch.zeros((2, 8, 8))
    with pytest.raises(TypeError, match="mask.*bool"):
        follow_flows(flows, torch.ones((8, 8)))
    with pytest.raises(ValueError, match="mask.*shape"):
        follow_flows(flows, torch.ones((8, 9), dtype=torch.bool))
    with pytest.raises(ValueError, match="flows.*shape"):
        follow_flows(torch.zeros((3, 8, 8)), torch.ones((8, 8), dtype=torch.bool))
    with pytest.raises(TypeError, match="flows.*floating"):
        follow_flows(torch.zeros((2, 8, 8), dtype=torch.int64), torch.ones((8, 8), dtype=torch.bool))
    with pytest.raises(ValueError, match="niter"):
        follow_flows(flows, torch.ones((8, 8), dtype=torch.bool), niter=-1)


def test_empty_mask_gives_no_points():
    assert follow_flows(torch.zeros((2, 8, 8)), torch.zeros((8, 8), dtype=torch.bool)).shape == (0, 2)
