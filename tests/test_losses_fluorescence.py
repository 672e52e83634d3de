"""PCC and L1 + L2 + PCC losses against SciPy and the LMC training step written out with plain torch."""

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from common.losses import L1L2PCCLoss, PCCLoss

NAN = float("nan")


def drawn_channel_targets(batch=4, channels=4, size=24, seed=0):
    """Predictions, NaN-padded targets with one drawn channel per sample, and the drawn channel indices."""
    generator = torch.Generator().manual_seed(seed)
    pred = torch.rand(batch, channels, size, size, generator=generator)
    drawn = torch.randint(channels, (batch,), generator=generator)
    noise = torch.rand(batch, 1, size, size, generator=generator)
    truth = 0.5 * noise + 0.5 * pred[torch.arange(batch), drawn][:, None]
    target = torch.full_like(pred, NAN)
    target[torch.arange(batch), drawn] = truth[:, 0]
    return pred, target, drawn, truth


def lmc_training_loss(pred, drawn, truth, l1=1.0, l2=0.5):
    """The LMC step: gather the drawn channel, L1 + l2 MSE + (1 - PCC) with 1e-6 in the PCC denominator."""
    chosen = torch.gather(pred, 1, drawn[:, None, None, None].expand(-1, 1, *pred.shape[2:]))
    loss = l1 * torch.nn.functional.l1_loss(chosen, truth) + l2 * torch.nn.functional.mse_loss(chosen, truth)
    vx, vy = chosen - chosen.mean(dim=(2, 3), keepdim=True), truth - truth.mean(dim=(2, 3), keepdim=True)
    pcc = (vx * vy).sum(dim=(2, 3)) / (vx.norm(dim=(2, 3)) * vy.norm(dim=(2, 3)) + 1e-6)
    return loss + 1.0 - pcc.mean()


def test_pcc_loss_is_one_minus_scipy_pearson_on_the_drawn_channels():
    pred, target, drawn, truth = drawn_channel_targets()
    expected = np.mean([pearsonr(pred[b, drawn[b]].flatten(), truth[b, 0].flatten())[0] for b in range(4)])
    assert PCCLoss()(pred, target).item() == pytest.approx(1.0 - expected, rel=1e-5)


def test_composite_loss_equals_the_lmc_step_and_sends_no_gradient_to_other_channels():
    pred, target, drawn, truth = drawn_channel_targets(seed=1)
    pred.requires_grad_(True)
    loss = L1L2PCCLoss()(pred, target)
    assert loss.item() == pytest.approx(lmc_training_loss(pred, drawn, truth).item(), rel=1e-6)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    other = torch.ones(4, 4, dtype=torch.bool)
    other[torch.arange(4), drawn] = False
    assert pred.grad[other].abs().max() == 0 and pred.grad[~other].abs().sum() > 0


def test_weights_are_applied_and_a_perfect_prediction_costs_nothing():
    pred, target, drawn, truth = drawn_channel_targets(seed=2)
    published = L1L2PCCLoss(l1_weight=0.5, l2_weight=1.0, pcc_weight=1.0)(pred, target)
    assert published.item() == pytest.approx(lmc_training_loss(pred, drawn, truth, l1=0.5, l2=1.0).item(), rel=1e-6)
    perfect = torch.where(torch.isnan(target), pred, target)
    assert L1L2PCCLoss()(perfect, target).item() == pytest.approx(0.0, abs=1e-5)


def test_unlabelled_pixels_are_left_out():
    pred, target, drawn, truth = drawn_channel_targets(batch=1, seed=3)
    padded = target.clone()
    padded[..., 20:, :] = NAN  # e.g. padding below a small image
    rows = pred[0, drawn[0], :20]
    expected = 1.0 - pearsonr(rows.flatten().numpy(), truth[0, 0, :20].flatten().numpy())[0]
    assert PCCLoss()(pred, padded).item() == pytest.approx(expected, rel=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="every channel is NaN"):
        L1L2PCCLoss()(torch.rand(1, 4, 8, 8), torch.full((1, 4, 8, 8), NAN))
    with pytest.raises(ValueError, match="shapes differ"):
        PCCLoss()(torch.rand(1, 4, 8, 8), torch.rand(1, 1, 8, 8))
