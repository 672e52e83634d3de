"""flow_error and fill_holes."""

import numpy as np
import pytest
import torch

from common.flows import fill_holes, flow_error, labels_to_flows
from tests.support.shapes import random_cells


def test_flow_error_is_zero_for_the_masks_own_flows_and_large_for_reversed_ones():
    labels = torch.from_numpy(random_cells((64, 64), 8, seed=3)).long()
    flows = labels_to_flows(labels)[0]
    n = int(labels.max())
    assert flow_error(labels, flows).shape == (n,)
    assert flow_error(labels, flows).max() < 1e-10
    reversed_ = flows.clone()
    reversed_[:, labels == 2] *= -1
    error = flow_error(labels, reversed_)
    assert error[1] > 3.0 and torch.all(error[[i for i in range(n) if i != 1]] < 1e-10)


def test_flow_error_of_an_id_without_pixels_is_zero():
    labels = torch.zeros((10, 10), dtype=torch.int64)
    labels[2:6, 2:6] = 3
    assert flow_error(labels, torch.ones((2, 10, 10))).tolist()[:2] == [0.0, 0.0]
    with pytest.raises(ValueError, match="flows"):
        flow_error(labels, torch.ones((2, 10, 11)))


def ring(shape, centre, outer, inner):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r2 = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2
    return (r2 <= outer**2) & (r2 > inner**2)


def test_fill_holes_fills_enclosed_background_and_absorbs_enclosed_masks():
    labels = np.zeros((40, 60), np.int64)
    labels[ring((40, 60), (20, 15), 12, 5)] = 1
    labels[ring((40, 60), (20, 45), 12, 6)] = 2
    labels[18:22, 43:47] = 3  # inside ring 2
    filled = fill_holes(torch.from_numpy(labels)).numpy()
    yy, xx = np.mgrid[:40, :60]
    assert np.all(filled[(yy - 20) ** 2 + (xx - 15) ** 2 <= 25] == 1)
    assert np.all(filled[(yy - 20) ** 2 + (xx - 45) ** 2 <= 36] == 2) and not np.any(filled == 3)
    assert np.all(
        filled[labels == 0][
            ~((yy - 20) ** 2 + (xx - 15) ** 2 <= 144)[labels == 0]
            & ~((yy - 20) ** 2 + (xx - 45) ** 2 <= 144)[labels == 0]
        ]
        == 0
    )


def test_fill_holes_leaves_open_concavities_and_diagonal_gaps():
    labels = np.zeros((20, 20), np.int64)
    labels[2:18, 2:18] = 4
    labels[6:14, 6:18] = 0  # a C shape: the opening reaches the box border
    labels[0:2, 0:2] = 5
    out = fill_holes(torch.from_numpy(labels)).numpy()
    np.testing.assert_array_equal(out, labels)
    diagonal = np.zeros((5, 5), np.int64)  # background touching the border only diagonally is a hole
    diagonal[0:3, 0:3] = 1
    diagonal[1, 1] = 0
    assert fill_holes(torch.from_numpy(diagonal))[1, 1] == 1


def test_fill_holes_without_masks():
    assert not fill_holes(torch.zeros((5, 5), dtype=torch.int64)).any()
