"""The NeurIPS 2022 cell segmentation challenge metric against hand-computed cases."""

import inspect

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from common.metrics import CellSegF1Metric, InstanceF1Metric, cellseg_counts, cellseg_f1
from common.ops import remove_border_instances


def square(labels, y, x, size, value):
    labels[y : y + size, x : x + size] = value
    return labels


def test_border_cells_are_left_out_of_both_images():
    gt = square(square(np.zeros((30, 30), int), 10, 10, 5, 1), 0, 20, 5, 2)  # cell 2 touches the top edge
    pred = square(np.zeros((30, 30), int), 10, 10, 5, 9)  # cell 2 missed: it does not count
    assert cellseg_f1(gt, pred) == {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    pred = square(pred, 28, 0, 2, 4)  # an extra cell in the frame does not count either
    assert cellseg_f1(gt, pred)["f1"] == 1.0
    assert np.array_equal(np.unique(remove_border_instances(gt)), [0, 1])


def test_iou_at_the_threshold_is_a_hit():
    gt = square(np.zeros((20, 20), int), 5, 5, 4, 1)  # 16 pixels
    pred = np.zeros((20, 20), int)
    pred[5:9, 5:7] = 1  # 8 of them: IoU exactly 0.5
    assert cellseg_f1(gt, pred)["tp"] == 1
    pred[5, 7] = 2  # a one-pixel cell on the true one: IoU 1/16, a false positive
    result = cellseg_f1(gt, pred)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 1, 0)
    assert result["precision"] == 0.5 and result["recall"] == 1.0 and result["f1"] == pytest.approx(2 / 3)


def test_no_true_positive_scores_zero_even_for_two_empty_images():
    empty = np.zeros((10, 10), int)
    assert cellseg_f1(empty, empty)["f1"] == 0.0
    gt = square(empty.copy(), 3, 3, 4, 1)
    # no prediction: MEDIAR's get_confusion counts nothing, not even the missed cell
    assert cellseg_f1(gt, empty) == {"tp": 0, "fp": 0, "fn": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert cellseg_f1(empty, gt) == {"tp": 0, "fp": 1, "fn": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_large_images_are_scored_patch_by_patch():
    small = {"large_image_pixels": 40 * 40, "patch_size": 20}
    gt = np.zeros((40, 50), int)
    square(gt, 5, 5, 6, 1)  # inside patch (0, 0)
    square(gt, 17, 25, 6, 2)  # crosses the patch rows at y = 20: touches both patches' frames, counted nowhere
    square(gt, 25, 44, 4, 3)  # in the last, padded patch (x 40..59), clear of its frame
    square(gt, 25, 5, 4, 4)  # in patch (1, 0)
    pred = gt.copy()
    pred[gt == 3] = 0  # missed; its patch has no other prediction, so it is not a false negative
    pred[gt == 4] = 0
    square(pred, 31, 12, 3, 5)  # patch (1, 0) has a prediction (a false one): cell 4 is a false negative
    assert cellseg_counts(gt, pred, **small) == {"tp": 1, "fp": 1, "fn": 1}
    # below the size limit: one image, cell 2 counts; cell 3 is cropped away
    assert cellseg_counts(gt[:, :39], pred[:, :39], **small) == {"tp": 2, "fp": 1, "fn": 1}


def test_the_default_patching_starts_at_25_megapixels_with_2000_pixel_patches():
    defaults = inspect.signature(cellseg_counts).parameters
    assert defaults["large_image_pixels"].default == 25_000_000
    assert defaults["patch_size"].default == 2000


# ---------------------------------------------------------------------------- MEDIAR's formula, rewritten


def mediar_remove_boundary_cells(mask):
    """Cells with a pixel in the 2-pixel frame set to 0, the rest renumbered 1..n."""
    frame = np.ones(mask.shape, bool)
    frame[2:-2, 2:-2] = False
    mask = np.where(np.isin(mask, mask[frame]), 0, mask)
    ids = np.unique(mask[mask > 0])
    lookup = np.zeros(mask.max() + 1, int)
    lookup[ids] = np.arange(1, ids.size + 1)
    return lookup[mask]


def mediar_confusion(gt, pred, threshold=0.5):
    """TP, FP, FN as MEDIAR's get_confusion: nothing counted without a prediction; Hungarian matching on
    -(iou >= t) - iou / (2 n_min)."""
    n_gt, n_pred = gt.max(), pred.max()
    if n_pred == 0:
        return 0, 0, 0
    overlap = np.zeros((n_gt + 1, n_pred + 1))
    np.add.at(overlap, (gt.ravel(), pred.ravel()), 1)
    union = overlap.sum(0, keepdims=True) + overlap.sum(1, keepdims=True) - overlap
    iou = (overlap / union)[1:, 1:]
    if iou.size == 0:
        return 0, n_pred, n_gt
    costs = -(iou >= threshold).astype(float) - iou / (2 * min(iou.shape))
    rows, cols = linear_sum_assignment(costs)
    tp = int((iou[rows, cols] >= threshold).sum())
    return tp, n_pred - tp, n_gt - tp


def mediar_patch_counts(gt, pred, roi):
    """Counts summed over roi x roi patches of the zero-padded images, as evaluate_f1_score_cellseg does."""
    n_h, n_w = -(-gt.shape[0] // roi), -(-gt.shape[1] // roi)
    gt_pad, pred_pad = np.zeros((2, n_h * roi, n_w * roi), int)
    gt_pad[: gt.shape[0], : gt.shape[1]], pred_pad[: gt.shape[0], : gt.shape[1]] = gt, pred
    totals = np.zeros(3, int)
    for i in range(n_h):
        for j in range(n_w):
            window = np.s_[roi * i : roi * (i + 1), roi * j : roi * (j + 1)]
            totals += mediar_confusion(
                mediar_remove_boundary_cells(gt_pad[window]), mediar_remove_boundary_cells(pred_pad[window])
            )
    return dict(zip(("tp", "fp", "fn"), totals.tolist()))


def random_cells(rng, shape, n, first_id=1):
    labels = np.zeros(shape, int)
    for k in range(n):
        y, x = rng.integers(0, shape[0] - 5), rng.integers(0, shape[1] - 5)
        h, w = rng.integers(5, 12, 2)
        labels[y : y + h, x : x + w] = first_id + k
    return labels


def test_large_image_counts_equal_mediars_formula():
    rng = np.random.default_rng(7)
    gt = random_cells(rng, (130, 170), 90)
    pred = np.roll(gt, (1, -1), axis=(0, 1)) * 3  # shifted and renumbered: hits and misses
    pred[rng.random(gt.shape) < 0.02] = 0  # ragged edges
    pred[:, 150:] = 0  # the last column of patches (x 150..199) has no prediction at all
    pred = np.where(pred == 0, random_cells(rng, gt.shape, 15, first_id=1000), pred)  # false cells
    pred[:, 150:] = 0
    expected = mediar_patch_counts(gt, pred, roi=50)
    counts = cellseg_counts(gt, pred, large_image_pixels=100 * 100, patch_size=50)
    assert counts == expected
    assert min(expected.values()) >= 5  # hits, false cells and misses all occur
    last_column = np.pad(gt[:, 150:], ((0, 20), (0, 30)))  # as padded to 150 x 200
    uncounted = sum(mediar_remove_boundary_cells(last_column[y : y + 50]).max() for y in (0, 50, 100))
    assert uncounted > 0  # the patches without predictions hold true cells that are not counted as missed
    result = cellseg_f1(gt, pred, large_image_pixels=100 * 100, patch_size=50)
    precision, recall = (
        expected["tp"] / (expected["tp"] + expected["fp"]),
        expected["tp"] / (expected["tp"] + expected["fn"]),
    )
    assert result["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    # below the threshold the same pair is one image
    assert cellseg_counts(gt, pred) == dict(
        zip(("tp", "fp", "fn"), mediar_confusion(mediar_remove_boundary_cells(gt), mediar_remove_boundary_cells(pred)))
    )


# ---------------------------------------------------------------------------- as a MONAI metric (validation)


def mediar_f1(gt, pred):
    """F1 of one image as MEDIAR's evaluate_f1_score_cellseg: 0 without a true positive."""
    tp, fp, fn = mediar_confusion(mediar_remove_boundary_cells(gt), mediar_remove_boundary_cells(pred))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def test_cellseg_metric_is_the_mean_of_mediars_per_image_f1():
    rng = np.random.default_rng(3)
    pairs = []
    for index in range(5):
        gt = random_cells(rng, (48, 56), 12)
        pred = np.roll(gt, (index % 3, -1), axis=(0, 1)) * 2
        pred[rng.random(gt.shape) < 0.05 * index] = 0
        pairs.append((gt, pred))
    pairs.append((np.zeros((48, 56), int), np.zeros((48, 56), int)))  # no cells at all: 0, not 1
    pairs.append((pairs[0][0], np.zeros((48, 56), int)))  # no prediction: 0
    expected = [mediar_f1(gt, pred) for gt, pred in pairs]
    assert len(set(expected)) >= 4 and 0 < max(expected) < 1  # the images score differently

    metric = CellSegF1Metric()
    for start in (0, 4):  # two batches of (B, 1, H, W)
        batch = pairs[start : start + 4]
        scores = metric(
            torch.as_tensor(np.stack([p for _, p in batch]))[:, None],
            torch.as_tensor(np.stack([g for g, _ in batch]))[:, None],
        )
        assert scores[:, 0].tolist() == pytest.approx(expected[start : start + 4])
        assert scores[:, 0].tolist() == pytest.approx([cellseg_f1(g, p)["f1"] for g, p in batch])
    assert metric.aggregate().item() == pytest.approx(np.mean(expected))


def test_two_empty_images_score_zero_with_the_challenge_metric_and_with_plain_f1():
    empty = torch.zeros(1, 1, 16, 16, dtype=torch.int32)
    metric = CellSegF1Metric()
    metric(empty, empty)
    assert metric.aggregate().item() == 0.0
    plain = InstanceF1Metric(thresholds=[0.5], strict=False)
    plain(empty, empty)
    assert plain.aggregate().item() == 0.0
    with pytest.raises(RuntimeError, match="CellSegF1Metric: no images"):
        CellSegF1Metric().aggregate()
