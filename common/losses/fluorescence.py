"""Losses of image-to-image fluorescence prediction: Pearson correlation, and L1 + L2 + PCC of the LMC method.

Targets may leave channels or pixels unlabelled as NaN (an LMC sample carries one drawn organelle out of four,
:class:`common.transforms.ConcatChannelsd`): every term is computed over the labelled pixels of the labelled
(sample, channel) pairs only, and unlabelled ones pass no gradient.
"""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

from common.ops import pearson_correlation

__all__ = ["PCCLoss", "L1L2PCCLoss"]


def _labelled(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K, H, W) predictions, targets (NaN replaced by 0) and pixel masks of the K labelled (sample, channel) pairs."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}.")
    if pred.ndim < 3:
        raise ValueError(f"pred: expected (B, C, H, W), got shape {tuple(pred.shape)}.")
    mask = ~torch.isnan(target)
    labelled = mask.flatten(-2).any(dim=-1)  # (B, C): channels with at least one labelled pixel
    if not labelled.any():
        raise ValueError("target: every channel is NaN, nothing to compare the prediction with.")
    mask = mask[labelled]
    return pred[labelled], torch.where(mask, target[labelled], 0.0).to(pred.dtype), mask


class PCCLoss(_Loss):
    """``1 - PCC`` averaged over the labelled (sample, channel) pairs of (B, C, H, W) tensors.

    PCC as in the LMC method: ``sum(dx dy) / (|dx| |dy| + epsilon)`` over the pixels of one image channel,
    ``epsilon = 1e-6``.
    """

    def __init__(self, epsilon: float = 1e-6) -> None:
        super().__init__()
        self.epsilon = epsilon

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target, mask = _labelled(pred, target)
        return 1.0 - pearson_correlation(pred, target, mask, self.epsilon).mean()


class L1L2PCCLoss(_Loss):
    """``l1_weight * L1 + l2_weight * MSE + pcc_weight * (1 - PCC)`` over the labelled pixels and channels.

    L1 and MSE are means over all labelled pixels (the LMC code's ``nn.L1Loss`` and ``nn.MSELoss`` on the
    drawn channel), PCC is :class:`PCCLoss`'s mean over labelled (sample, channel) pairs. The LMC code trains
    with weights 1, 0.5, 1 (written ``L1 + 0.5 MSE - PCC``, the same up to a constant); its README states
    0.5, 1, 1.

    Args:
        l1_weight, l2_weight, pcc_weight: weights of the three terms.
        epsilon: of the PCC denominator.

    ``forward(pred, target)``: (B, C, H, W) predictions (after the sigmoid) and targets, NaN where unlabelled.
    """

    def __init__(
        self, l1_weight: float = 1.0, l2_weight: float = 0.5, pcc_weight: float = 1.0, epsilon: float = 1e-6
    ) -> None:
        super().__init__()
        self.l1_weight, self.l2_weight, self.pcc_weight, self.epsilon = l1_weight, l2_weight, pcc_weight, epsilon

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred, target, mask = _labelled(pred, target)
        error = (pred - target)[mask]
        pcc = pearson_correlation(pred, target, mask, self.epsilon).mean()
        l1, l2 = error.abs().mean(), error.square().mean()
        return self.l1_weight * l1 + self.l2_weight * l2 + self.pcc_weight * (1.0 - pcc)
