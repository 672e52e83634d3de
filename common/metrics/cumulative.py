"""MONAI cumulative metric over batches of instance label images, for ``IgniteMetricHandler``."""

from __future__ import annotations

from typing import Sequence

import torch
from monai.metrics import CumulativeIterationMetric

from .instance import CAICEDO_THRESHOLDS, mean_average_f1

__all__ = ["InstanceF1Metric"]


class InstanceF1Metric(CumulativeIterationMetric):
    """F1 of object matching per image at each IoU threshold; ``aggregate`` gives the mean over images and thresholds.

    With the default thresholds (0.50 to 0.95) this is the mean-average F1 of Caicedo et al.; with
    ``thresholds=(0.5,)`` it is F1 at IoU 0.5.

    Args:
        thresholds: IoU thresholds.
        strict: a hit needs IoU strictly above the threshold (Caicedo's convention).
    """

    def __init__(self, thresholds: Sequence[float] = CAICEDO_THRESHOLDS, strict: bool = True) -> None:
        super().__init__()
        self.thresholds = tuple(thresholds)
        self.strict = strict

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) predicted and true labels -> (B, T) F1 per image and threshold."""
        if y_pred.shape != y.shape:
            raise ValueError(f"y_pred and y shapes differ: {tuple(y_pred.shape)} vs {tuple(y.shape)}.")
        rows = [
            list(mean_average_f1(gt, pred, self.thresholds, self.strict)["f1_per_threshold"].values())
            for pred, gt in zip(y_pred, y)
        ]
        return torch.as_tensor(rows, dtype=torch.float32, device=y_pred.device)

    def aggregate(self) -> torch.Tensor:
        """Mean F1 over all images and thresholds seen since the last reset."""
        buffer = self.get_buffer()
        if not isinstance(buffer, torch.Tensor) or buffer.numel() == 0:
            raise RuntimeError("InstanceF1Metric: no images were seen, nothing to aggregate.")
        return buffer.mean()
