"""Sobel gradient L1 loss: how far the edges of a probability map lie from the edges of its target.

The DSB watershed method's headline run adds this term to its Dice + BCE loss on the touching-boundary channel
(``use_gradient_loss`` of its ``WeightedDiceBCELoss``): both maps are filtered by the two unnormalised 3 x 3
Sobel kernels (a cross-correlation, zero padding of one pixel) and the mean absolute difference of the two
gradient fields is the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

__all__ = ["sobel_gradients", "SobelGradientL1Loss"]

_SOBEL = torch.tensor(
    [
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],  # d/dx: right minus left, smoothed along y
        [[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]],  # d/dy: below minus above, smoothed along x
    ]
)


def sobel_gradients(image: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 2, H, W) Sobel derivatives along x and y of every channel, zero-padded borders.

    The kernels are the unnormalised ones (weights 1, 2, 1), applied as a cross-correlation, as
    ``scipy.ndimage.sobel(..., mode="constant")`` along axes x and y.
    """
    if image.ndim != 4:
        raise ValueError(f"image: expected (B, C, H, W), got shape {tuple(image.shape)}.")
    batch, channels, height, width = image.shape
    kernels = _SOBEL.to(device=image.device, dtype=image.dtype)[:, None]  # (2, 1, 3, 3)
    gradients = F.conv2d(image.reshape(batch * channels, 1, height, width), kernels, padding=1)
    return gradients.reshape(batch, channels, 2, height, width)


class SobelGradientL1Loss(_Loss):
    """Mean absolute difference of the Sobel gradients (:func:`sobel_gradients`) of prediction and target.

    Args:
        channels: the channels compared; ``None`` for all. The DSB method compares its touching-boundary
            channel only (channel 1 in this collection's [nucleus, boundary] order).
        sigmoid: apply a sigmoid to the prediction first (it is given as logits); the original compares the
            probabilities its network's sigmoid output gives.

    ``forward(pred, target)``: (B, C, H, W) prediction and target; returns the mean over the selected channels,
    both directions and all pixels.
    """

    def __init__(self, channels: Sequence[int] | None = (1,), sigmoid: bool = True) -> None:
        super().__init__()
        self.channels = None if channels is None else list(channels)
        self.sigmoid = sigmoid

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}.")
        if self.channels is not None:
            if max(self.channels, default=-1) >= pred.shape[1] or min(self.channels, default=0) < -pred.shape[1]:
                raise ValueError(f"channels: {self.channels} out of range for {pred.shape[1]} channels of pred.")
            pred, target = pred[:, self.channels], target[:, self.channels]
        if self.sigmoid:
            pred = torch.sigmoid(pred)
        target = target.to(pred.dtype)
        return F.l1_loss(sobel_gradients(pred), sobel_gradients(target))
