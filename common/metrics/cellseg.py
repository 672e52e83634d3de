"""The metric of the NeurIPS 2022 cell segmentation challenge, as MEDIAR computes it.

Per image: cells touching the ``border``-pixel frame of the image are removed from both label images, cells
are matched one to one (:mod:`common.metrics.instance`, a hit at IoU >= 0.5), and F1 = 2PR / (P + R), taken
as 0 when there is no true positive (also when both images are empty). Images of 25 megapixels and more are
cut into 2000 x 2000 patches (the last ones padded), border cells are removed in each patch and the counts
summed over the patches before precision, recall and F1 are taken. As in MEDIAR's ``get_confusion``
(``train_tools/measures.py``), an image or patch without a predicted cell (after border removal) counts
nothing: no false negatives for its true cells. The challenge score is the mean F1 over images.
"""

from __future__ import annotations

import numpy as np

from common.ops import as_label_array, remove_border_instances

from .instance import iou_matrix, match_from_iou

__all__ = ["cellseg_counts", "cellseg_f1", "cellseg_score", "LARGE_IMAGE_PIXELS", "PATCH_SIZE"]

#: images with at least this many pixels are scored patch by patch, in patches of PATCH_SIZE squared.
LARGE_IMAGE_PIXELS = 5000 * 5000
PATCH_SIZE = 2000


def cellseg_counts(
    gt,
    pred,
    threshold: float = 0.5,
    border: int = 2,
    large_image_pixels: int = LARGE_IMAGE_PIXELS,
    patch_size: int = PATCH_SIZE,
) -> dict:
    """True positives, false positives and false negatives of one (H, W) image pair under the challenge's rules.

    Images with at least ``large_image_pixels`` pixels are counted patch by patch (``patch_size`` squared
    patches, zero-padded at the bottom and right), each patch with its own border removal; the counts are summed.
    """
    gt, pred = as_label_array(gt, "gt"), as_label_array(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred shapes differ: {gt.shape} vs {pred.shape}.")
    if gt.size < large_image_pixels:
        return _counts(gt, pred, threshold, border)
    height, width = gt.shape
    padded = (-(-height // patch_size) * patch_size, -(-width // patch_size) * patch_size)
    totals = {"tp": 0, "fp": 0, "fn": 0}
    for y in range(0, padded[0], patch_size):
        for x in range(0, padded[1], patch_size):
            # the padding is background; a patch reaching into it has its frame there
            gt_patch, pred_patch = (np.zeros((patch_size, patch_size), labels.dtype) for labels in (gt, pred))
            for target, labels in ((gt_patch, gt), (pred_patch, pred)):
                part = labels[y : y + patch_size, x : x + patch_size]
                target[: part.shape[0], : part.shape[1]] = part
            for key, value in _counts(gt_patch, pred_patch, threshold, border).items():
                totals[key] += value
    return totals


def _counts(gt: np.ndarray, pred: np.ndarray, threshold: float, border: int) -> dict:
    gt, pred = remove_border_instances(gt, border), remove_border_instances(pred, border)
    if not pred.any():  # MEDIAR counts nothing here, not even false negatives
        return {"tp": 0, "fp": 0, "fn": 0}
    match = match_from_iou(iou_matrix(gt, pred), threshold, strict=False)
    return {key: match[key] for key in ("tp", "fp", "fn")}


def cellseg_f1(gt, pred, threshold: float = 0.5, border: int = 2, **patching) -> dict:
    """Challenge score of one image: ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` (all 0 without a
    true positive). ``patching``: ``large_image_pixels`` and ``patch_size`` of :func:`cellseg_counts`."""
    counts = cellseg_counts(gt, pred, threshold, border, **patching)
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    if tp == 0:
        return {**counts, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {**counts, "precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}


def cellseg_score(pred, label, item=None) -> dict:
    """:func:`cellseg_f1` of ``label`` and ``pred``: the ``score`` for :class:`common.handlers.MetricsReport`."""
    return cellseg_f1(label, pred)
