"""Compatibility with cellpose's own dynamics (runs where cellpose is installed, e.g. a separate venv)."""

import numpy as np
import pytest
import torch

from common.flows import CELLPOSE_FLOW_SCALE, flows_to_labels, labels_to_flows
from common.metrics import match_instances
from tests.support.cellpose_reference import import_cellpose_dynamics
from tests.support.shapes import random_cells

try:
    dynamics = import_cellpose_dynamics()
except ImportError as error:  # the project does not depend on cellpose
    pytest.skip(f"cellpose.dynamics is not importable ({error}); install cellpose to compare", allow_module_level=True)


@pytest.fixture(scope="module")
def labels():
    return random_cells((160, 192), 60, seed=31)


def isolated(labels):
    """Cell pixels whose four neighbours are of the same cell or background (not another cell)."""
    padded = np.pad(labels, 1)
    centre = padded[1:-1, 1:-1]
    ok = centre > 0
    for shifted in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
        ok &= (shifted == 0) | (shifted == centre)
    return ok


def test_flows_match_cellpose_masks_to_flows(labels):
    theirs, _ = dynamics.masks_to_flows_gpu(labels, device=torch.device("cpu"))
    np.testing.assert_allclose(labels_to_flows(labels, neighbour_heat=True)[0].numpy(), theirs, atol=1e-3)
    ours = labels_to_flows(labels)[0].numpy()  # default: differs only where cells touch
    inner = isolated(labels)
    np.testing.assert_allclose(ours[:, inner], theirs[:, inner], atol=1e-3)
    assert np.abs(ours - theirs)[:, (labels > 0) & ~inner].max() > 0.5


def test_our_post_processing_of_cellpose_flows_agrees_with_cellpose(labels):
    logits = np.where(labels > 0, 4.0, -4.0).astype(np.float32)
    network = CELLPOSE_FLOW_SCALE * dynamics.masks_to_flows_gpu(labels, device=torch.device("cpu"))[0]
    theirs = dynamics.resize_and_compute_masks(network, logits, device=torch.device("cpu"))
    ours = flows_to_labels(
        torch.from_numpy(network).float(), torch.from_numpy(logits), flow_scale=CELLPOSE_FLOW_SCALE, neighbour_heat=True
    )
    scores = match_instances(theirs, ours.numpy())
    assert scores["f1"] == 1.0 and scores["mean_iou"] >= 0.95  # cellpose bins end points half a pixel off
    # cellpose's flows send edge pixels into touching neighbours, for both post-processings alike
    assert match_instances(labels, ours.numpy())["mean_iou"] >= match_instances(labels, theirs)["mean_iou"]


def test_cellpose_post_processing_of_our_flows(labels):
    logits = np.where(labels > 0, 4.0, -4.0).astype(np.float32)
    for neighbour_heat in (True, False):
        ours = CELLPOSE_FLOW_SCALE * labels_to_flows(labels, neighbour_heat=neighbour_heat)[0].numpy()
        masks = dynamics.resize_and_compute_masks(ours, logits, flow_threshold=0.0, device=torch.device("cpu"))
        assert match_instances(labels, masks)["f1"] == 1.0
    errors, _ = dynamics.flow_error(
        labels, CELLPOSE_FLOW_SCALE * labels_to_flows(labels, neighbour_heat=True)[0].numpy()
    )
    assert errors.max() < 1e-6  # cellpose's own quality check sees its own flows
