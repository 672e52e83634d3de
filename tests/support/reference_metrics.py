"""The bundles' evaluation metrics recomputed independently of ``common.metrics``, with numpy, scipy and
scikit-image, from a prediction and its label as the evaluator's handlers got them (see
``tests.support.recording.OutputRecorder``), following each method's published definition (``METHODS.md``).

Each function takes ``(pred, label)`` arrays of one image and returns the report rows it recomputes for that
image: one row (a dict) or a list of rows. A row holds numeric columns and may hold str fields (such as
``organelle``) by which the report also groups its means. The suite compares the means over all rows with the
evaluation report's, overall and per group. A bundle's spec names its function in ``metric`` (see
``tests/support/bundles.py``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import ndimage, stats
from scipy.optimize import linear_sum_assignment
from skimage.metrics import structural_similarity

__all__ = ["REFERENCE_METRICS", "adipocyte_fluorescence", "cellseg_f1", "instance_f1", "light_my_cells", "mask_overlap"]

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


def _without_border_cells(labels: np.ndarray, width: int) -> np.ndarray:
    """``labels`` with every instance whose bounding box reaches into the ``width``-pixel frame set to 0."""
    kept = labels.copy()
    height, breadth = labels.shape
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is not None and (
            min(box[0].start, box[1].start) < width or box[0].stop > height - width or box[1].stop > breadth - width
        ):
            kept[labels == index] = 0
    return kept


def _challenge_counts(gt: np.ndarray, pred: np.ndarray, border: int) -> tuple[int, int, int]:
    """TP, FP, FN of one image or patch: border cells dropped from both, then the largest one-to-one matching of
    pairs at IoU >= 0.5; nothing counted where no predicted cell is left (MEDIAR's ``get_confusion``)."""
    gt, pred = _without_border_cells(gt, border), _without_border_cells(pred, border)
    n_true, n_pred = len(np.unique(gt[gt > 0])), len(np.unique(pred[pred > 0]))
    if n_pred == 0:
        return 0, 0, 0
    hits = _iou(gt, pred) >= 0.5
    rows, cols = linear_sum_assignment(hits, maximize=True) if hits.size else ([], [])
    tp = int(hits[rows, cols].sum())
    return tp, n_pred - tp, n_true - tp


def cellseg_f1(
    pred: np.ndarray, label: np.ndarray, border: int = 2, large: int = 5000 * 5000, patch: int = 2000
) -> dict:
    """The NeurIPS 2022 cell segmentation challenge's F1 at IoU 0.5 of one image (``tp``, ``fp``, ``fn``,
    ``precision``, ``recall``, ``f1``; all rates 0 without a true positive). Images of ``large`` pixels and more are
    counted over ``patch``-pixel squares of the zero-padded image, each with its own border, counts summed."""
    gt, pred = np.asarray(label).squeeze().astype(np.int64), np.asarray(pred).squeeze().astype(np.int64)
    if gt.size < large:
        tp, fp, fn = _challenge_counts(gt, pred, border)
    else:
        shape = [-(-size // patch) * patch for size in gt.shape]
        padded = [np.pad(image, [(0, shape[0] - gt.shape[0]), (0, shape[1] - gt.shape[1])]) for image in (gt, pred)]
        counts = [
            _challenge_counts(padded[0][y : y + patch, x : x + patch], padded[1][y : y + patch, x : x + patch], border)
            for y in range(0, shape[0], patch)
            for x in range(0, shape[1], patch)
        ]
        tp, fp, fn = np.sum(counts, axis=0).tolist()
    if tp == 0:
        return {"tp": 0, "fp": fp, "fn": fn, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall),
    }


def mask_overlap(pred: np.ndarray, label: np.ndarray) -> dict:
    """Dice and IoU of the foreground (non-zero) of a one-channel prediction and its label; 1 when both are empty."""
    pred, label = np.asarray(pred).squeeze() != 0, np.asarray(label).squeeze() != 0
    both, either = np.logical_and(pred, label).sum(), np.logical_or(pred, label).sum()
    if either == 0:
        return {"dice": 1.0, "iou": 1.0}
    return {"dice": 2 * both / (pred.sum() + label.sum()), "iou": both / either}


#: the LMC bundle's output channels, in the published code's order.
LMC_CHANNELS = ("Nucleus", "Mitochondria", "Tubulin", "Actin")


def _percentile_normalised(image: np.ndarray) -> np.ndarray:
    """The Light My Cells evaluator's ``(x - p2) / (p99.8 - p2)``, unclipped; unchanged when p2 == p99.8."""
    low, high = np.percentile(image, [2, 99.8])
    return image if low == high else (image - low) / (high - low)


def light_my_cells(pred: np.ndarray, label: np.ndarray) -> list[dict]:
    """The Light My Cells evaluator's scores of one (4, H, W) image, a row per organelle with a target (label
    channels of NaN have none): PCC (scipy's ``pearsonr``, NaN counted 0) and SSIM (scikit-image's default
    ``structural_similarity``, data range the larger of the two normalised images' ranges) for every organelle;
    also MAE, Euclidean and |cosine| distance of the flattened images for nucleus and mitochondria."""
    rows = []
    for name, prediction, target in zip(LMC_CHANNELS, np.asarray(pred, np.float64), np.asarray(label, np.float64)):
        if not np.isfinite(target).all():
            continue
        x, y = _percentile_normalised(target), _percentile_normalised(prediction)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            pcc = stats.pearsonr(x.ravel(), y.ravel())[0]
        ssim = structural_similarity(x, y, data_range=max(np.ptp(x), np.ptp(y)))
        row = {"organelle": name, "PCC": 0.0 if np.isnan(pcc) else float(pcc), "SSIM": float(ssim)}
        if name in ("Nucleus", "Mitochondria"):
            norms = np.linalg.norm(x) * np.linalg.norm(y)
            cosine = float(np.dot(x.ravel(), y.ravel()) / norms) if norms else 0.0
            row.update(
                MAE=float(np.abs(x - y).mean()),
                E_dist=float(np.linalg.norm(x - y)),
                C_dist=abs(float(np.clip(1.0 - cosine, 0.0, 2.0))),
            )
        rows.append(row)
    return rows


def _gaussian_ssim(x: np.ndarray, y: np.ndarray, data_range: float, size: int = 11, sigma: float = 1.5) -> float:
    """``tf.image.ssim``: mean over the valid positions of an ``size``² Gaussian window (sampled, normalised) of
    luminance x contrast-structure, population (co)variances, constants (0.01 R)² and (0.03 R)²."""
    taps = np.exp(-0.5 * (np.arange(size) - size // 2) ** 2 / sigma**2)
    taps /= taps.sum()

    def window_mean(image: np.ndarray) -> np.ndarray:
        smoothed = ndimage.correlate1d(ndimage.correlate1d(image, taps, axis=0), taps, axis=1)
        return smoothed[size // 2 : -(size // 2), size // 2 : -(size // 2)]  # windows inside the image

    mx, my = window_mean(x), window_mean(y)
    vx, vy, cxy = window_mean(x * x) - mx**2, window_mean(y * y) - my**2, window_mean(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return float(np.mean((2 * mx * my + c1) / (mx**2 + my**2 + c1) * (2 * cxy + c2) / (vx + vy + c2)))


def adipocyte_fluorescence(pred: np.ndarray, label: np.ndarray, data_range: float = 65535.0) -> list[dict]:
    """The adipocyte bundle's scores of one (C, H, W) image, a row per channel: MSE, SSIM and PSNR as the Bug
    Hunters measured them (``tf.image.ssim`` and ``tf.image.psnr``, max value 65535) and the Adipocyte Cell Imaging
    Challenge's pixel metric of the image, mean |pred - target| over the target's median (NaN if that is <= 0)."""
    rows = []
    for prediction, target in zip(np.asarray(pred, np.float64), np.asarray(label, np.float64)):
        mse = float(np.mean((prediction - target) ** 2))
        middle = float(np.median(target))
        rows.append(
            {
                "mse": mse,
                "ssim": _gaussian_ssim(prediction, target, data_range),
                "psnr": math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse),
                "mae_over_median": float(np.abs(prediction - target).mean()) / middle if middle > 0 else math.nan,
            }
        )
    return rows


REFERENCE_METRICS = {
    "adipocyte_fluorescence": adipocyte_fluorescence,
    "cellseg_f1": cellseg_f1,
    "instance_f1": instance_f1,
    "light_my_cells": light_my_cells,
    "mask_overlap": mask_overlap,
}
