"""Foreground (semantic) segmentation scores per image: Dice, IoU and confluence, batched, in torch."""

from __future__ import annotations

import torch

__all__ = ["semantic_scores"]


def semantic_scores(pred: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dice, IoU and confluence of binary masks, per image and channel.

    Args:
        pred: ``(B, C, H, W)`` predicted masks (bool, or numbers where non-zero is foreground); C may count
            several predictions of one image (e.g. threshold methods), all scored against the same label.
        label: ``(B, 1, H, W)`` or ``(B, C, H, W)`` true masks.

    Returns:
        ``(B, C)`` float64 tensors on the inputs' device: ``dice`` ``2|P&T| / (|P| + |T|)`` and ``iou``
        ``|P&T| / |P|T|`` (both 1 when prediction and label are empty), ``confluence_pred`` and
        ``confluence_true`` (percentage of the image that is foreground) and ``confluence_error`` (predicted
        minus true, in percentage points).
    """
    if (
        pred.ndim != 4
        or label.ndim != 4
        or label.shape[1] not in (1, pred.shape[1])
        or pred.shape[2:] != label.shape[2:]
    ):
        raise ValueError(
            f"expected pred (B, C, H, W) and label (B, 1 or C, H, W) of one size, got {tuple(pred.shape)} and "
            f"{tuple(label.shape)}."
        )
    pred, label = pred != 0, (label != 0).expand_as(pred)
    dims = (2, 3)
    overlap = (pred & label).sum(dims).double()
    pred_area, true_area = pred.sum(dims).double(), label.sum(dims).double()
    union = pred_area + true_area - overlap
    empty = union == 0
    dice = torch.where(empty, 1.0, 2 * overlap / (pred_area + true_area).clamp_min(1))
    iou = torch.where(empty, 1.0, overlap / union.clamp_min(1))
    pixels = pred.shape[2] * pred.shape[3]
    confluence_pred, confluence_true = 100 * pred_area / pixels, 100 * true_area / pixels
    return {
        "dice": dice,
        "iou": iou,
        "confluence_pred": confluence_pred,
        "confluence_true": confluence_true,
        "confluence_error": confluence_pred - confluence_true,
    }
