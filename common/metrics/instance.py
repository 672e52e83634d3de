"""Object-level matching of instance label images: F1 at an IoU threshold and its average over thresholds.

Both images are (H, W) integer arrays (NumPy or torch), 0 is background, any other id one object; ids need
not be contiguous. Matching is one to one: a Hungarian assignment maximises first the number of pairs at or
above the threshold, then their IoU, so it is also right below IoU 0.5, where one object can overlap several.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from common.ops import as_label_array

__all__ = ["CAICEDO_THRESHOLDS", "f1_from_iou", "iou_matrix", "match_from_iou", "match_instances", "mean_average_f1"]

#: IoU thresholds 0.50, 0.55, ..., 0.95 of Caicedo et al. 2019 (Cytometry A), used by the DSB bundle.
CAICEDO_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def iou_matrix(gt, pred) -> np.ndarray:
    """IoU of every ground-truth object with every predicted object.

    Args:
        gt: (H, W) integer labels.
        pred: (H, W) integer labels of the same shape.

    Returns:
        (N_gt, N_pred) float64 array; rows follow the sorted non-zero ids of ``gt``, columns those of ``pred``.
    """
    gt = as_label_array(gt, "gt")
    pred = as_label_array(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred shapes differ: {gt.shape} vs {pred.shape}.")
    gt_ids, gt_index = np.unique(gt, return_inverse=True)
    pred_ids, pred_index = np.unique(pred, return_inverse=True)
    # contiguous indices with background (id 0, if present) at index 0 of each side
    gt_index = gt_index.ravel() + (0 if gt_ids[0] == 0 else 1)
    pred_index = pred_index.ravel() + (0 if pred_ids[0] == 0 else 1)
    n_gt, n_pred = gt_index.max() + 1, pred_index.max() + 1
    overlap = np.bincount(gt_index * n_pred + pred_index, minlength=n_gt * n_pred).reshape(n_gt, n_pred)
    overlap = overlap[1:, 1:].astype(np.float64)
    gt_area = np.bincount(gt_index, minlength=n_gt)[1:, None]
    pred_area = np.bincount(pred_index, minlength=n_pred)[None, 1:]
    union = gt_area + pred_area - overlap
    return np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)


def _matched_ious(iou: np.ndarray, threshold: float, strict: bool) -> np.ndarray:
    """IoUs of the true-positive pairs of a one-to-one matching that maximises their number, then their IoU."""
    if 0 in iou.shape:
        return np.zeros(0)
    hit = iou > threshold if strict else iou >= threshold
    # the IoU term adds less than 1/2 in total, so it only breaks ties between matchings with as many hits
    score = hit + iou / (2 * min(iou.shape))
    rows, cols = linear_sum_assignment(score, maximize=True)
    keep = hit[rows, cols]
    return iou[rows[keep], cols[keep]]


def match_instances(gt, pred, iou_threshold: float = 0.5, strict: bool = False) -> dict:
    """Match predicted objects to ground-truth objects one to one and count hits.

    A pair counts as a true positive when its IoU is ``>= iou_threshold`` (``> iou_threshold`` with
    ``strict=True``, the convention of Caicedo et al.). Without a true positive, precision, recall, F1 and
    mean IoU are 0.0, also when both images are empty: an image without objects is no perfect score (as in
    microscopy-with-ml's ``measures_at`` and StarDist's ``matching``).

    Args:
        gt: (H, W) integer ground-truth labels.
        pred: (H, W) integer predicted labels.
        iou_threshold: IoU a matched pair needs.
        strict: compare with ``>`` instead of ``>=``.

    Returns:
        dict with ``tp``, ``fp``, ``fn`` (int), ``precision``, ``recall``, ``f1`` and ``mean_iou`` (float, the
        mean IoU of the true-positive pairs).
    """
    return match_from_iou(iou_matrix(gt, pred), iou_threshold, strict)


def match_from_iou(iou: np.ndarray, iou_threshold: float = 0.5, strict: bool = False) -> dict:
    """:func:`match_instances` from an (N_gt, N_pred) IoU matrix already computed by :func:`iou_matrix`."""
    n_gt, n_pred = iou.shape
    matched = _matched_ious(iou, iou_threshold, strict)
    tp = int(matched.size)
    fp, fn = n_pred - tp, n_gt - tp
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gt if n_gt else 0.0
    f1 = 2 * tp / (n_gt + n_pred) if tp else 0.0  # n_gt + n_pred = 2 tp + fp + fn
    mean_iou = float(matched.mean()) if tp else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1, "mean_iou": mean_iou}


def mean_average_f1(gt, pred, thresholds: Sequence[float] = CAICEDO_THRESHOLDS, strict: bool = True) -> dict:
    """F1 at each IoU threshold and their mean (Caicedo et al. 2019; a hit needs IoU strictly above t).

    F1 = 2 TP / (2 TP + FP + FN), 0 without a true positive (so 0 for an image with no object in either).

    Returns:
        dict with ``f1_per_threshold`` ({threshold: f1}) and ``mean_f1``.
    """
    return f1_from_iou(iou_matrix(gt, pred), thresholds, strict)


def f1_from_iou(iou: np.ndarray, thresholds: Sequence[float] = CAICEDO_THRESHOLDS, strict: bool = True) -> dict:
    """:func:`mean_average_f1` from an (N_gt, N_pred) IoU matrix already computed by :func:`iou_matrix`."""
    n_gt, n_pred = iou.shape
    per_threshold = {}
    for t in thresholds:
        tp = _matched_ious(iou, t, strict).size
        per_threshold[float(t)] = 2 * tp / (n_gt + n_pred) if tp else 0.0  # n_gt + n_pred = 2 tp + fp + fn
    return {"f1_per_threshold": per_threshold, "mean_f1": float(np.mean(list(per_threshold.values())))}
