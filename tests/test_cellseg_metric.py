"""The NeurIPS 2022 cell segmentation challenge metric against hand-computed cases."""

import numpy as np
import pytest

import common.metrics.cellseg as cellseg
from common.metrics import cellseg_f1, remove_border_instances


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
    assert cellseg_f1(gt, empty) == {"tp": 0, "fp": 0, "fn": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_large_images_are_scored_patch_by_patch(monkeypatch):
    monkeypatch.setattr(cellseg, "LARGE_IMAGE_PIXELS", 40 * 40)
    monkeypatch.setattr(cellseg, "PATCH_SIZE", 20)
    gt = np.zeros((40, 50), int)
    square(gt, 5, 5, 6, 1)  # inside patch (0, 0)
    square(gt, 17, 25, 6, 2)  # crosses the patch rows at y = 20: touches both patches' frames, counted nowhere
    square(gt, 25, 44, 4, 3)  # in the last, padded patch (x 40..59), clear of its frame
    pred = gt.copy()
    pred[gt == 3] = 0  # missed
    assert cellseg.cellseg_counts(gt, pred) == {"tp": 1, "fp": 0, "fn": 1}
    # below the size limit: one image, cell 2 counts; cell 3 is cropped away
    assert cellseg.cellseg_counts(gt[:, :39], pred[:, :39]) == {"tp": 2, "fp": 0, "fn": 0}
