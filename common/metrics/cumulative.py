"""MONAI cumulative metrics over batches of instance label images, for ``IgniteMetricHandler``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.metrics import CumulativeIterationMetric

from .cellseg import cellseg_f1
from .instance import CAICEDO_THRESHOLDS, mean_average_f1

__all__ = ["CellSegF1Metric", "InstanceF1Metric"]


class _PerImageScores(CumulativeIterationMetric):
    """Scores of each image of a batch of (B, 1, H, W) label pairs, averaged over all images by ``aggregate``."""

    def _scores(self, pred: torch.Tensor, gt: torch.Tensor) -> list[float]:
        """Scores of one (1, H, W) image pair."""
        raise NotImplementedError

    def _compute_tensor(  # type: ignore[override]  # MONAI's base has y=None, **kwargs; its metrics narrow it too
        self, y_pred: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """(B, 1, H, W) predicted and true labels -> (B, S) scores per image."""
        if y_pred.shape != y.shape:
            raise ValueError(f"y_pred and y shapes differ: {tuple(y_pred.shape)} vs {tuple(y.shape)}.")
        rows = [self._scores(pred, gt) for pred, gt in zip(y_pred, y)]
        return torch.as_tensor(rows, dtype=torch.float32, device=y_pred.device)

    def aggregate(self) -> torch.Tensor:
        """Mean of the scores of all images seen since the last reset."""
        buffer = self.get_buffer()
        if not isinstance(buffer, torch.Tensor) or buffer.numel() == 0:
            raise RuntimeError(f"{type(self).__name__}: no images were seen, nothing to aggregate.")
        return buffer.mean()


class InstanceF1Metric(_PerImageScores):
    """F1 of object matching per image at each IoU threshold; ``aggregate`` gives the mean over images and thresholds.

    With the default thresholds (0.50 to 0.95) this is the mean-average F1 of Caicedo et al.; with
    ``thresholds=(0.5,)`` it is F1 at IoU 0.5. An image with no object in either label image scores 0.

    Args:
        thresholds: IoU thresholds.
        strict: a hit needs IoU strictly above the threshold (Caicedo's convention).
    """

    def __init__(self, thresholds: Sequence[float] = CAICEDO_THRESHOLDS, strict: bool = True) -> None:
        super().__init__()
        self.thresholds = tuple(thresholds)
        self.strict = strict

    def _scores(self, pred: torch.Tensor, gt: torch.Tensor) -> list[float]:
        return list(mean_average_f1(gt, pred, self.thresholds, self.strict)["f1_per_threshold"].values())


class CellSegF1Metric(_PerImageScores):
    """The NeurIPS 2022 cell segmentation challenge score: :func:`common.metrics.cellseg_f1` of each image
    (border cells removed, hit at IoU >= ``threshold``, F1 0 without a true positive, so an image without
    true cells never scores), ``aggregate`` the mean over images.

    Args:
        threshold: IoU a hit needs.
        border: width of the frame whose cells are left out.
        patching: ``large_image_pixels`` and ``patch_size`` of :func:`common.metrics.cellseg_counts`.
    """

    def __init__(self, threshold: float = 0.5, border: int = 2, **patching) -> None:
        super().__init__()
        self.threshold, self.border, self.patching = threshold, border, patching

    def _scores(self, pred: torch.Tensor, gt: torch.Tensor) -> list[float]:
        return [cellseg_f1(gt, pred, self.threshold, self.border, **self.patching)["f1"]]
