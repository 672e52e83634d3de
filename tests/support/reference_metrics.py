"""The bundles' evaluation metrics recomputed independently of ``common.metrics``, with numpy and scipy, from a
prediction and its label as the evaluator's handlers got them (see ``tests.support.recording.OutputRecorder``).

Each function takes ``(pred, label)`` arrays and returns the report columns it recomputes for that image; the
suite compares their means over the images with the evaluation report's. A bundle's spec names them in
``metric`` (see ``tests/support/bundles.py``).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["REFERENCE_METRICS", "instance_f1", "mask_overlap"]

CAICEDO_THRESHOLDS = [0.5 + 0.05 * step for step in range(10)]


def _iou(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(n_true, n_pred) IoU of the instances (ids > 0) of two label images, by pixel counting."""
    _, gt_ids = np.unique(gt, return_inverse=True)
    _, pred_ids = np.unique(pred, return_inverse=True)
    gt_ids, pred_ids = gt_ids.reshape(-1), pred_ids.reshape(-1)
    has_bg_gt, has_bg_pred = int((gt == 0).any()), int((pred == 0).any())
    overlap = np.zeros((gt_ids.max() + 1, pred_ids.max() + 1))
    np.add.at(overlap, (gt_ids, pred_ids), 1)
    union = overlap.sum(1, keepdims=True) + overlap.sum(0, keepdims=True) - overlap  # areas include background overlap
    return (overlap / np.maximum(union, 1))[has_bg_gt:, has_bg_pred:]


def instance_f1(pred: np.ndarray, label: np.ndarray) -> dict:
    """Caicedo et al. (2019): F1 of a one-to-one matching (Hungarian, on IoU) where a pair counts at IoU strictly
    above each threshold 0.5, 0.55, ..., 0.95; ``mean_f1`` is their mean (0 for an image without any object)."""
    iou = _iou(np.asarray(label).squeeze(), np.asarray(pred).squeeze())
    rows, cols = linear_sum_assignment(-iou) if iou.size else ([], [])
    matched = iou[rows, cols]
    n_true, n_pred = iou.shape
    f1 = [2 * (matched > t).sum() / (n_true + n_pred) if n_true + n_pred else 0.0 for t in CAICEDO_THRESHOLDS]
    return {"mean_f1": float(np.mean(f1)), "f1@0.50": float(f1[0])}


def mask_overlap(pred: np.ndarray, label: np.ndarray) -> dict:
    """Dice and IoU of the foreground (non-zero) of a one-channel prediction and its label; 1 when both are empty."""
    pred, label = np.asarray(pred).squeeze() != 0, np.asarray(label).squeeze() != 0
    both, either = np.logical_and(pred, label).sum(), np.logical_or(pred, label).sum()
    if either == 0:
        return {"dice": 1.0, "iou": 1.0}
    return {"dice": 2 * both / (pred.sum() + label.sum()), "iou": both / either}


REFERENCE_METRICS = {"instance_f1": instance_f1, "mask_overlap": mask_overlap}
