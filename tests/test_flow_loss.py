"""FlowCellprobLoss against MEDIAR's loss written with torch.nn losses on independently computed targets."""

import pytest
import torch
from torch import nn

from common.flows import labels_to_flows
from common.losses import FlowCellprobLoss
from common.transforms import BoundaryExclusion, LabelsToFlows
from tests.support.shapes import random_cells

MEDIAR = dict(log_heat=True, neighbour_heat=True, centre="median")


@pytest.fixture(scope="module")
def labels():
    return torch.stack([torch.from_numpy(random_cells((48, 40), 12, seed=s)[None]) for s in (1, 2)]).to(torch.int32)


def mediar_loss(pred, labels):
    """MEDIAR's Trainer.loss_fn: MSE(pred flows, 5 x flows) / 2 + BCE-with-logits(cellprob, labels > 0.5)."""
    flows = torch.stack([labels_to_flows(label[0], **MEDIAR)[0] for label in labels])
    return nn.MSELoss()(pred[:, :2], 5.0 * flows) / 2 + nn.BCEWithLogitsLoss()(pred[:, 2], (labels[:, 0] > 0.5).float())


def test_equals_mediars_loss_and_has_gradients(labels):
    torch.manual_seed(0)
    pred = torch.randn(2, 3, 48, 40, requires_grad=True)
    loss = FlowCellprobLoss()(pred, labels)
    torch.testing.assert_close(loss, mediar_loss(pred, labels))
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[:, :2].abs().sum() > 0 and pred.grad[:, 2].abs().sum() > 0


def test_precomputed_targets_give_the_same_loss(labels):
    pred = torch.randn(2, 3, 48, 40)
    targets = torch.stack([LabelsToFlows(**MEDIAR)(label) for label in labels])
    torch.testing.assert_close(FlowCellprobLoss()(pred, targets), FlowCellprobLoss()(pred, labels))
    perfect = torch.cat([targets[:, :2], targets[:, 2:] * 40 - 20], dim=1)
    assert FlowCellprobLoss()(perfect, labels) < 1e-6


def test_ignored_pixels_do_not_count(labels):
    marked = torch.stack([BoundaryExclusion(min_area=0, border=0, mode="ignore")(label) for label in labels])
    ignored = marked < 0
    assert ignored.any()
    pred = torch.randn(2, 3, 48, 40)
    changed = pred.clone()
    changed[ignored.expand_as(pred)] += 100.0  # anything may be predicted where labels are ignored
    loss = FlowCellprobLoss()
    torch.testing.assert_close(loss(changed, marked), loss(pred, marked))
    assert not torch.isclose(loss(changed, labels), loss(pred, labels))


def test_shape_errors(labels):
    with pytest.raises(ValueError, match=r"pred: expected \(B, 3, H, W\)"):
        FlowCellprobLoss()(torch.zeros(2, 2, 48, 40), labels)
    with pytest.raises(ValueError, match="target: expected"):
        FlowCellprobLoss()(torch.zeros(2, 3, 48, 40), labels[:, :, :10])


def test_half_precision_outputs_are_scored_in_float32():
    labels = torch.zeros(2, 1, 256, 256, dtype=torch.int32)
    labels[:, :, 100:140, 100:140] = 1
    pred = torch.full((2, 3, 256, 256), 10.0, dtype=torch.float16)  # squared errors sum far beyond float16's range
    loss = FlowCellprobLoss()(pred, labels)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(loss, FlowCellprobLoss()(pred.float(), labels))
