"""flows_to_labels: round trips from labels, the cellpose scale, filters, tiling and bad input."""

import warnings

import numpy as np
import pytest
import torch

from common.flows import CELLPOSE_FLOW_SCALE, flows_to_labels, labels_to_flows
from common.flows.masks import tile_grid
from common.metrics import match_instances
from tests.support.shapes import random_cells


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small ops: one thread keeps run time predictable when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def logits(labels):
    return torch.from_numpy(np.asarray(labels) > 0).float() * 8 - 4


def assert_round_trip(labels, result):
    scores = match_instances(labels, result.numpy(), iou_threshold=0.5)
    assert scores["f1"] == 1.0, scores
    assert scores["mean_iou"] >= 0.99, scores


@pytest.fixture(scope="module")
def cells():
    return random_cells((384, 320), 180, seed=11)  # touching, concave cells of 15+ pixels


def test_round_trip_of_touching_non_convex_cells(cells):
    result = flows_to_labels(labels_to_flows(cells)[0], logits(cells))
    assert result.dtype == torch.int32 and result.shape == cells.shape
    assert_round_trip(cells, result)
    assert torch.equal(torch.unique(result), torch.arange(int(result.max()) + 1, dtype=torch.int32))


def test_round_trip_with_non_contiguous_and_large_ids(cells):
    sparse = np.where(cells > 0, cells.astype(np.int64) * 389 + 70000, 0)
    result = flows_to_labels(labels_to_flows(sparse)[0], logits(sparse))
    assert_round_trip(sparse, result)


def test_round_trip_of_log_heat_flows_at_network_scale(cells):
    flows = labels_to_flows(cells, log_heat=True)[0] * CELLPOSE_FLOW_SCALE
    result = flows_to_labels(flows, logits(cells), flow_scale=CELLPOSE_FLOW_SCALE, log_heat=True)
    assert_round_trip(cells, result)
    unscaled = flows_to_labels(flows, logits(cells), log_heat=True)  # 5x steps overshoot the sinks
    assert match_instances(cells, unscaled.numpy())["f1"] < 1.0


def test_mediar_variant_passes_its_own_flow_check(cells):
    mediar = dict(log_heat=True, neighbour_heat=True, centre="median")
    flows = CELLPOSE_FLOW_SCALE * labels_to_flows(cells, **mediar)[0]
    result = flows_to_labels(flows, logits(cells), flow_scale=CELLPOSE_FLOW_SCALE, **mediar)
    assert match_instances(cells, result.numpy())["f1"] == 1.0  # edge pixels may follow their neighbours


def test_masks_are_numbered_in_raster_order_of_their_first_pixel(cells):
    result = flows_to_labels(labels_to_flows(cells)[0], logits(cells)).numpy()
    first_ids = result.ravel()[np.sort(np.unique(result.ravel(), return_index=True)[1])]
    np.testing.assert_array_equal(first_ids[first_ids > 0], np.arange(1, result.max() + 1))


def test_size_filters():
    labels = np.zeros((64, 64), np.int32)
    labels[2:7, 2:7] = 1  # 25 pixels
    labels[10:40, 10:40] = 2  # 900 pixels, 22 % of the image
    flows, prob = labels_to_flows(labels)[0], logits(labels)
    assert set(np.unique(flows_to_labels(flows, prob, min_size=25).numpy())) == {0, 1, 2}
    assert set(np.unique(flows_to_labels(flows, prob, min_size=26).numpy())) == {0, 1}
    assert set(np.unique(flows_to_labels(flows, prob, max_size_fraction=0.2).numpy())) == {0, 1}
    # a block of a larger image drops what the whole image drops: 900 pixels are 11 % of 128 x 64
    whole = flows_to_labels(flows, prob, max_size_fraction=0.2, whole_shape=(128, 64))
    assert set(np.unique(whole.numpy())) == {0, 1, 2}
    assert set(np.unique(flows_to_labels(flows, prob, max_size_fraction=0.1, whole_shape=(128, 64)).numpy())) == {0, 1}
    # masks dropped as too large before the flow check, among them the highest id, leave the others checked
    labels[50:56, 50:56] = 3  # 36 pixels
    flows, prob = labels_to_flows(labels)[0], logits(labels)
    assert len(np.unique(flows_to_labels(flows, prob, max_size_fraction=0.2).numpy())) == 3


def test_masks_with_inconsistent_flows_are_dropped(cells):
    flows = labels_to_flows(cells)[0]
    noisy = flows.clone()
    target = torch.from_numpy(cells == np.bincount(cells.ravel())[1:].argmax() + 1)  # the largest cell
    generator = torch.Generator().manual_seed(0)
    noisy[:, target] += 0.9 * torch.randn((2, int(target.sum())), generator=generator)
    kept = flows_to_labels(noisy, logits(cells))
    assert (kept[target] > 0).float().mean() < 0.05  # a few noisy pixels may join a neighbour
    assert match_instances(cells, kept.numpy())["tp"] == int(cells.max()) - 1
    unchecked = flows_to_labels(noisy, logits(cells), flow_threshold=0)
    assert unchecked[target].any()


def test_tiled_equals_untiled_up_to_float_rounding(cells):
    flows, prob = labels_to_flows(cells)[0], logits(cells)
    whole = flows_to_labels(flows, prob, tile_size=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cells are smaller than the overlap: no mask may be cut
        tiled = flows_to_labels(flows, prob, tile_size=96, tile_overlap=48)
    assert int(tiled.max()) == int(whole.max())
    assert (tiled == whole).float().mean() > 0.999  # same ids, not just the same masks
    scores = match_instances(whole.numpy(), tiled.numpy())
    assert scores["f1"] == 1.0 and scores["mean_iou"] > 0.999


def test_tile_cores_cover_the_axis_once_and_context_is_clipped():
    assert tile_grid(10, 4, 2) == [(0, 4, 0, 6), (4, 8, 2, 10), (8, 10, 6, 10)]
    assert tile_grid(4, 8, 3) == [(0, 4, 0, 4)]


def test_tiles_too_small_for_the_cells_warn(cells):
    flows, prob = labels_to_flows(cells)[0], logits(cells)
    with pytest.warns(UserWarning, match="tile_overlap"):
        flows_to_labels(flows, prob, tile_size=64, tile_overlap=4)


def test_batch_and_probability_input(cells):
    other = random_cells((384, 320), 120, seed=12)
    flows = labels_to_flows(np.stack([cells, other]))
    probabilities = torch.sigmoid(torch.stack([logits(cells), logits(other)]))
    result = flows_to_labels(flows, probabilities, cellprob_threshold=0.5)
    assert result.shape == (2,) + cells.shape
    assert_round_trip(other, result[1])


def test_no_foreground_gives_empty_labels():
    result = flows_to_labels(torch.zeros((2, 32, 32)), torch.full((32, 32), -5.0))
    assert result.shape == (32, 32) and result.dtype == torch.int32 and not result.any()
    noise = flows_to_labels(torch.zeros((2, 32, 32)), torch.full((32, 32), 5.0))  # no flows: no sink > 10 px
    assert not noise.any()


def test_bad_input():
    flows, prob = torch.zeros((2, 16, 16)), torch.zeros((16, 16))
    with pytest.raises(ValueError, match="cellprob.*shape"):
        flows_to_labels(flows, torch.zeros((16, 17)))
    with pytest.raises(ValueError, match="flows.*shape"):
        flows_to_labels(torch.zeros((1, 1, 2, 16, 16)), prob)
    with pytest.raises(ValueError, match="flow_scale"):
        flows_to_labels(flows, prob, flow_scale=0)
    with pytest.raises(ValueError, match="max_size_fraction"):
        flows_to_labels(flows, prob, max_size_fraction=0)
    with pytest.raises(ValueError, match="whole_shape"):
        flows_to_labels(flows, prob, whole_shape=(0, 16))
    with pytest.raises(ValueError, match="min_size"):
        flows_to_labels(flows, prob, min_size=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(cells):
    flows, prob = labels_to_flows(cells)[0], logits(cells)
    on_cuda = flows_to_labels(flows.cuda(), prob.cuda())
    assert on_cuda.device.type == "cuda"
    scores = match_instances(flows_to_labels(flows, prob).numpy(), on_cuda.cpu().numpy())
    assert scores["f1"] == 1.0 and scores["mean_iou"] > 0.999
