"""Weighted Dice + BCE against an independent computation."""

import pytest
import torch
import torch.nn.functional as F

from common.losses import WeightedDiceBCELoss


def reference_loss(logits, target, positive_weights, epsilon=1e-6):
    """Channel by channel, with plain loops, from the definition."""
    total = 0.0
    for c, w_pos in enumerate(positive_weights):
        p, t = torch.sigmoid(logits[:, c]).flatten(), target[:, c].flatten()
        w = torch.where(t == 1, torch.tensor(w_pos), torch.tensor(1.0))
        dice = 1 - (2 * (w * p * t).sum() + epsilon) / ((w * p).sum() + (w * t).sum() + epsilon)
        bce = (w * F.binary_cross_entropy(p, t, reduction="none")).mean()
        total = total + dice + bce
    return total


def test_matches_reference_and_has_gradients():
    torch.manual_seed(0)
    logits = torch.randn(3, 2, 16, 16, requires_grad=True)
    target = (torch.rand(3, 2, 16, 16) > 0.8).float()
    loss = WeightedDiceBCELoss()(logits, target)
    assert loss.item() == pytest.approx(reference_loss(logits, target, (4.0, 333.3)).item(), rel=1e-5)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_perfect_prediction_scores_near_zero_and_boundary_misses_cost_more():
    target = torch.zeros(1, 2, 8, 8)
    target[:, 0, 2:6, 2:6] = 1
    target[:, 1, 2:6, 3] = 1
    loss = WeightedDiceBCELoss()
    assert loss(target * 40 - 20, target).item() < 1e-4
    miss_nucleus, miss_boundary = target * 40 - 20, target * 40 - 20
    miss_nucleus[:, 0, 2, 2] = -20
    miss_boundary[:, 1, 2, 3] = -20
    assert loss(miss_boundary, target) > loss(miss_nucleus, target)


def test_shape_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        WeightedDiceBCELoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(ValueError, match="2 channels"):
        WeightedDiceBCELoss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))
