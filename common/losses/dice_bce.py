"""Class-weighted Dice + BCE for the two-channel [nucleus, touching boundary] targets of the DSB method."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from .gradient import SobelGradientL1Loss

__all__ = ["WeightedDiceBCELoss"]


class WeightedDiceBCELoss(_Loss):
    """Sum over channels of a pixel-weighted soft Dice loss and a pixel-weighted binary cross-entropy.

    Pixels that are positive in channel ``c`` weigh ``positive_weights[c]``, all others 1, in both terms; the
    Dice of a channel is computed over the whole batch. The defaults are those of the published DSB watershed
    model (4.0 for nucleus pixels, 333.3 for the rare touching-boundary pixels). Takes logits: the sigmoid
    is applied here, so the BCE term is the numerically stable one.

    With ``gradient_weight > 0`` the Sobel gradient L1 loss (:class:`SobelGradientL1Loss`) of the
    probabilities of ``gradient_channels`` is added with that weight, as in the method's headline run
    (``use_gradient_loss``, weight 1.0, on the touching-boundary channel).

    Args:
        positive_weights: weight of positive pixels, one per channel.
        channel_weights: weight of each channel's Dice + BCE in the sum.
        bce_weight: weight of the BCE terms against the Dice terms.
        epsilon: smoothing of the Dice ratio.
        gradient_weight: weight of the Sobel gradient L1 term; 0 leaves it out.
        gradient_channels: the channels that term compares (default the boundary channel, 1).
    """

    positive_weights: torch.Tensor  # buffers, (C,)
    channel_weights: torch.Tensor

    def __init__(
        self,
        positive_weights: Sequence[float] = (4.0, 333.3),
        channel_weights: Sequence[float] = (1.0, 1.0),
        bce_weight: float = 1.0,
        epsilon: float = 1e-6,
        gradient_weight: float = 0.0,
        gradient_channels: Sequence[int] = (1,),
    ) -> None:
        super().__init__()
        if len(positive_weights) != len(channel_weights):
            raise ValueError(
                f"positive_weights and channel_weights need one value per channel, got {len(positive_weights)} "
                f"and {len(channel_weights)}."
            )
        self.register_buffer("positive_weights", torch.as_tensor(positive_weights, dtype=torch.float32))
        self.register_buffer("channel_weights", torch.as_tensor(channel_weights, dtype=torch.float32))
        self.bce_weight = bce_weight
        self.epsilon = epsilon
        self.gradient_weight = gradient_weight
        self.gradient_loss = SobelGradientL1Loss(gradient_channels, sigmoid=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            logits: (B, C, H, W) network outputs before the sigmoid.
            target: (B, C, H, W) binary targets.

        Returns:
            scalar loss.
        """
        if logits.shape != target.shape:
            raise ValueError(f"logits and target shapes differ: {tuple(logits.shape)} vs {tuple(target.shape)}.")
        channels = self.positive_weights.numel()
        if logits.shape[1] != channels:
            raise ValueError(f"logits: expected {channels} channels, got {logits.shape[1]}.")
        target = target.to(logits.dtype)
        shape = (1, channels) + (1,) * (logits.ndim - 2)
        weights = 1.0 + (self.positive_weights.view(shape).to(logits.dtype) - 1.0) * target
        reduce_dims = [0] + list(range(2, logits.ndim))  # everything but the channel

        probabilities = torch.sigmoid(logits)
        intersection = (weights * probabilities * target).sum(reduce_dims)
        denominator = (weights * probabilities).sum(reduce_dims) + (weights * target).sum(reduce_dims)
        dice_loss = 1.0 - (2.0 * intersection + self.epsilon) / (denominator + self.epsilon)

        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        bce_loss = (weights * bce).mean(reduce_dims)

        channel_weights = self.channel_weights.to(logits.dtype)
        loss = (channel_weights * (dice_loss + self.bce_weight * bce_loss)).sum()
        if self.gradient_weight:
            loss = loss + self.gradient_weight * self.gradient_loss(logits, target)
        return loss
