"""labels_to_flows and its parts: centres, heat diffusion, gradient; checked against a plain reference."""

import numpy as np
import pytest
import torch

from common.flows import labels_to_flows
from common.flows.heat import crop_centres, diffuse_heat, heat_to_flows
from tests.support.shapes import random_cells


def reference_flows(labels: np.ndarray, log_heat=False, neighbour_heat=False, centre="mean") -> np.ndarray:
    """Cellpose's definition, one cell at a time on the whole image, in float64 (slow, obviously right)."""
    total = np.zeros(labels.shape)
    cells = np.unique(labels[labels > 0])
    boxes = [np.nonzero(labels == c) for c in cells]
    n_iter = 2 * max(np.ptp(ys) + np.ptp(xs) + 4 for ys, xs in boxes)
    for cell, (ys, xs) in zip(cells, boxes):
        top, left = ys.min(), xs.min()
        if centre == "mean":
            cy, cx = np.round((ys - top).mean()), np.round((xs - left).mean())
        else:
            cy, cx = np.median(ys - top), np.median(xs - left)
        nearest = np.argmin((ys - top - cy) ** 2 + (xs - left - cx) ** 2)  # first in raster order on ties
        heat = np.zeros(labels.shape)
        for _ in range(n_iter):
            heat[ys[nearest], xs[nearest]] += 1
            padded = np.pad(heat, 1)
            box = sum(
                padded[1 + dy : 1 + dy + labels.shape[0], 1 + dx : 1 + dx + labels.shape[1]]
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
            )
            heat = box / 9 * (labels == cell)
        total += heat
    if log_heat:
        total = np.log1p(total)
    padded, padded_labels = np.pad(total, 1), np.pad(labels, 1)

    def neighbour(dy, dx):
        window = (slice(1 + dy, 1 + dy + labels.shape[0]), slice(1 + dx, 1 + dx + labels.shape[1]))
        return padded[window] * (neighbour_heat | (padded_labels[window] == labels))

    dy, dx = neighbour(1, 0) - neighbour(-1, 0), neighbour(0, 1) - neighbour(0, -1)
    norm = np.hypot(dy, dx)
    ok = (labels > 0) & (norm > 0)
    flows = np.zeros((2,) + labels.shape)
    flows[0][ok], flows[1][ok] = dy[ok] / norm[ok], dx[ok] / norm[ok]
    return flows


@pytest.mark.parametrize(
    "log_heat, neighbour_heat, centre",
    [(False, False, "mean"), (True, False, "mean"), (False, True, "mean"), (True, True, "median")],
)
def test_matches_reference_definition(log_heat, neighbour_heat, centre):
    labels = random_cells((72, 80), 10, seed=4)
    ours = labels_to_flows(labels, log_heat=log_heat, neighbour_heat=neighbour_heat, centre=centre)[0].numpy()
    np.testing.assert_allclose(ours, reference_flows(labels, log_heat, neighbour_heat, centre), atol=2e-4)


def test_unit_on_cells_zero_on_background_and_pointing_inwards():
    yy, xx = np.mgrid[:64, :64]
    labels = ((yy - 30) ** 2 + (xx - 34) ** 2 <= 15**2).astype(np.int32) * 7
    flows = labels_to_flows(torch.from_numpy(labels))
    assert flows.shape == (1, 2, 64, 64) and flows.dtype == torch.float32
    norm = flows[0].norm(dim=0).numpy()
    assert np.all(norm[labels == 0] == 0)
    ring = (labels > 0) & ((yy - 30) ** 2 + (xx - 34) ** 2 >= 4)
    np.testing.assert_allclose(norm[ring], 1.0, atol=1e-5)
    towards_centre = flows[0, 0].numpy() * (30 - yy) + flows[0, 1].numpy() * (34 - xx)
    assert np.all(towards_centre[ring] > 0)


def test_median_centre():
    mask = np.zeros((1, 9, 9), bool)
    mask[0, 1, 1:8] = True  # a T: median (2, 4), the mean (3.0, 4.0) rounds elsewhere
    mask[0, 2:8, 4] = True
    mask[0, 7, 4:8] = True
    ys, xs = np.nonzero(mask[0])
    d2 = (ys - np.median(ys)) ** 2 + (xs - np.median(xs)) ** 2
    expected = ys[np.argmin(d2)] * 9 + xs[np.argmin(d2)]
    assert int(crop_centres(torch.from_numpy(mask), "median")[0]) == expected
    assert int(crop_centres(torch.from_numpy(mask), "mean")[0]) != expected
    with pytest.raises(ValueError, match="centre"):
        labels_to_flows(np.zeros((4, 4), np.int32), centre="middle")


def test_centre_lies_inside_a_non_convex_cell():
    mask = np.zeros((1, 30, 30), bool)  # a C shape: its centroid is in the opening
    mask[0, 2:28, 2:8] = mask[0, 2:8, 2:28] = mask[0, 22:28, 2:28] = True
    centre = int(crop_centres(torch.from_numpy(mask))[0])
    y, x = divmod(centre, 30)
    assert mask[0, y, x]
    ys, xs = np.nonzero(mask[0])
    d2 = (ys - np.round(ys.mean())) ** 2 + (xs - np.round(xs.mean())) ** 2
    assert (y - np.round(ys.mean())) ** 2 + (x - np.round(xs.mean())) ** 2 == d2.min()


def test_diffusion_stays_in_its_cell_and_each_crop_stops_at_its_iteration_count():
    mask = torch.zeros((2, 9, 9), dtype=torch.bool)
    mask[:, 2:7, 2:7] = True
    centres = torch.tensor([40, 40])
    heat = diffuse_heat(mask, centres, np.array([6, 2]))
    assert torch.all(heat[:, 1:-1, 1:-1][~mask] == 0) and torch.all(heat[:, 0] == 0)
    alone = diffuse_heat(mask[1:], centres[1:], np.array([2]))
    torch.testing.assert_close(heat[1], alone[0])
    assert heat[0].sum() > heat[1].sum()
    with pytest.raises(ValueError, match="n_iter"):
        diffuse_heat(mask, centres, np.array([2, 6]))


def test_gradient_is_zero_where_the_field_is_flat():
    heat = torch.zeros((1, 5, 5))
    heat[0, 2, 2] = 1.0
    flows = heat_to_flows(heat, torch.ones((1, 3, 3), dtype=torch.bool))
    assert torch.all(flows[0, :, 1, 1] == 0)  # the peak itself
    torch.testing.assert_close(flows[0, :, 0, 1], torch.tensor([1.0, 0.0]))  # above the peak: points down


def test_ids_do_not_matter_and_batches_equal_single_images():
    labels = random_cells((64, 64), 12, seed=1)
    sparse = np.where(labels > 0, labels * 977 + 70000, 0).astype(np.int64)
    huge = np.where(labels > 0, labels.astype(np.int64) + 2**40, 0)
    expected = labels_to_flows(labels)
    torch.testing.assert_close(labels_to_flows(sparse), expected)
    torch.testing.assert_close(labels_to_flows(huge), expected)
    torch.testing.assert_close(labels_to_flows(labels.astype(np.uint16)), expected)
    other = random_cells((64, 64), 8, seed=2)
    batch = labels_to_flows(np.stack([labels, other]))
    torch.testing.assert_close(batch[1:], labels_to_flows(other))
    torch.testing.assert_close(batch[:1], expected)


def test_long_thin_cell_keeps_flows_to_its_far_end():
    labels = np.zeros((5, 400), np.int32)
    labels[2, 5:395] = 1  # float32 heat underflows far from the centre; such cells are redone in float64
    flows = labels_to_flows(labels)[0]
    along = flows[1, 2, 5:395].numpy()
    assert np.all(along[:150] > 0.99) and np.all(along[-150:] < -0.99)


def test_fixed_iteration_count_limits_how_far_heat_spreads():
    labels = random_cells((48, 48), 5, seed=3)
    cells = torch.from_numpy(labels > 0)
    few, default = labels_to_flows(labels, niter=3)[0], labels_to_flows(labels)[0]
    unreached = (few.norm(dim=0) == 0) & cells
    assert unreached.sum() > 20 * len(np.unique(labels))  # beyond 3 pixels of the centres
    assert ((default.norm(dim=0) == 0) & cells).sum() <= len(np.unique(labels))  # at most the centres


def test_bad_input():
    with pytest.raises(TypeError, match="labels.*integer"):
        labels_to_flows(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="labels.*>= 0"):
        labels_to_flows(-np.ones((8, 8), np.int32))
    with pytest.raises(ValueError, match="labels.*shape"):
        labels_to_flows(np.zeros((1, 1, 8, 8), np.int32))
    with pytest.raises(TypeError, match="labels"):
        labels_to_flows([[0, 1]])


def test_all_background_gives_zero_flows():
    flows = labels_to_flows(torch.zeros((2, 16, 12), dtype=torch.int64))
    assert flows.shape == (2, 2, 16, 12) and not flows.any()
    assert labels_to_flows(np.zeros((0, 5), np.int32)).shape == (1, 2, 0, 5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    labels = torch.from_numpy(random_cells((96, 96), 15, seed=6))
    torch.testing.assert_close(labels_to_flows(labels.cuda()).cpu(), labels_to_flows(labels), atol=1e-5, rtol=0)
