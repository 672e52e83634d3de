"""Object matching metrics against hand-computed cases."""

import numpy as np
import pytest
import torch

from common.metrics import CAICEDO_THRESHOLDS, InstanceF1Metric, iou_matrix, match_instances, mean_average_f1


def square(labels, y, x, size, value):
    labels[y : y + size, x : x + size] = value
    return labels


def test_identical_images_match_perfectly_with_any_ids():
    gt = square(square(np.zeros((20, 20), int), 0, 0, 5, 7), 10, 10, 6, 70000)
    pred = np.where(gt == 7, 1, np.where(gt > 0, 2, 0))  # same objects, other ids
    result = match_instances(gt, pred)
    assert (result["tp"], result["fp"], result["fn"]) == (2, 0, 0)
    assert result["f1"] == 1.0 and result["mean_iou"] == 1.0


def test_missed_and_extra_objects():
    gt = square(square(np.zeros((20, 20), int), 0, 0, 4, 1), 10, 10, 4, 2)
    pred = square(square(np.zeros((20, 20), int), 0, 0, 4, 5), 0, 10, 4, 6)  # one hit, one false object
    result = match_instances(gt, pred)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 1, 1)
    assert result["precision"] == 0.5 and result["recall"] == 0.5 and result["f1"] == 0.5


def test_split_object_counts_as_one_hit_at_most():
    gt = square(np.zeros((10, 10), int), 0, 0, 10, 1)  # one 10x10 object
    pred = np.zeros((10, 10), int)
    pred[:, :6], pred[:, 6:] = 1, 2  # split 60 / 40 pixels
    result = match_instances(gt, pred, 0.5)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 1, 0)
    assert result["mean_iou"] == pytest.approx(0.6)
    assert result["f1"] == pytest.approx(2 / 3)


def test_merged_objects():
    gt = np.zeros((10, 10), int)
    gt[:, :5], gt[:, 5:] = 1, 2
    pred = (gt > 0).astype(int)  # both merged: IoU 0.5 with each
    assert match_instances(gt, pred, 0.5)["tp"] == 1  # IoU 0.5 >= 0.5
    assert match_instances(gt, pred, 0.5, strict=True)["tp"] == 0  # Caicedo: strictly above


def test_empty_images_score_zero():
    # an image without objects in either truth or prediction is no perfect score (microscopy-with-ml, StarDist)
    empty = np.zeros((8, 8), int)
    one = square(np.zeros((8, 8), int), 2, 2, 3, 1)
    assert match_instances(empty, empty) == {
        "tp": 0,
        "fp": 0,
        "fn": 0,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "mean_iou": 0.0,
    }
    assert mean_average_f1(empty, empty) == {"f1_per_threshold": dict.fromkeys(CAICEDO_THRESHOLDS, 0.0), "mean_f1": 0.0}
    assert match_instances(one, empty) == {
        "tp": 0,
        "fp": 0,
        "fn": 1,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "mean_iou": 0.0,
    }
    assert match_instances(empty, one)["fp"] == 1


def test_iou_matrix_values():
    gt = square(np.zeros((10, 10), int), 0, 0, 4, 3)  # 16 px
    pred = square(np.zeros((10, 10), int), 2, 0, 4, 9)  # 16 px, 8 overlapping
    assert iou_matrix(gt, pred) == pytest.approx(np.array([[8 / 24]]))


def test_one_to_one_below_iou_half():
    # at IoU 0.2 one predicted object overlaps two true ones; it may match only one of them
    gt = np.zeros((4, 20), int)
    gt[:, 0:10], gt[:, 10:20] = 1, 2
    pred = np.zeros((4, 20), int)
    pred[:, 4:16] = 1  # IoU 6/16 with each
    result = match_instances(gt, pred, 0.2)
    assert (result["tp"], result["fp"], result["fn"]) == (1, 0, 1)


def test_mean_average_f1_hand_computed():
    gt = square(square(np.zeros((20, 20), int), 0, 0, 5, 1), 10, 10, 5, 2)
    pred = np.zeros((20, 20), int)
    pred[0:5, 0:4] = 1  # IoU 0.8 with gt 1
    result = mean_average_f1(gt, pred)
    # thresholds 0.50..0.75: one hit -> F1 = 2/3; 0.80..0.95: IoU 0.8 is not strictly above -> 0
    expected = [2 / 3] * 6 + [0.0] * 4
    assert list(result["f1_per_threshold"].values()) == pytest.approx(expected)
    assert result["mean_f1"] == pytest.approx(np.mean(expected))
    assert tuple(result["f1_per_threshold"]) == CAICEDO_THRESHOLDS


def test_bad_inputs_raise():
    with pytest.raises(TypeError, match="integer"):
        match_instances(np.zeros((4, 4), float), np.zeros((4, 4), int))
    with pytest.raises(ValueError, match="shapes differ"):
        match_instances(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match=">= 0"):
        match_instances(-np.ones((4, 4), int), np.zeros((4, 4), int))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        match_instances(np.zeros((2, 4, 4), int), np.zeros((2, 4, 4), int))


def original_f1(gt: np.ndarray, pred: np.ndarray, threshold: float) -> float:
    """F1 of one image as microscopy-with-ml computes it (src/mwm/components/metrics.py, written anew here): IoU
    of every object pair from pixel counts, background dropped, a hit where IoU > threshold, and
    F1 = 2 TP / (2 TP + FP + FN + 1e-9), so 0 when neither image has an object."""
    gt_ids, pred_ids = np.unique(gt)[1:], np.unique(pred)[1:]
    iou = np.zeros((len(gt_ids), len(pred_ids)))
    for i, g in enumerate(gt_ids):
        for j, p in enumerate(pred_ids):
            intersection = np.sum((gt == g) & (pred == p))
            iou[i, j] = intersection / (np.sum(gt == g) + np.sum(pred == p) - intersection)
    matches = iou > threshold
    tp = np.sum(matches.sum(axis=1) == 1)
    fp = np.sum(matches.sum(axis=0) == 0)
    fn = np.sum(matches.sum(axis=1) == 0)
    return 2 * tp / (2 * tp + fp + fn + 1e-9)


def random_labels(rng, objects: int, shape=(24, 24)) -> np.ndarray:
    labels = np.zeros(shape, int)
    for value in range(1, objects + 1):
        y, x = rng.integers(0, shape[0] - 4, 2)
        height, width = rng.integers(3, 9, 2)
        labels[y : y + height, x : x + width] = value  # later rectangles cover earlier ones
    return labels


def test_mean_average_f1_equals_the_originals_per_image_f1_including_empty_images():
    rng = np.random.default_rng(0)
    pairs = [(np.zeros((24, 24), int), np.zeros((24, 24), int))]  # no nucleus in truth or prediction
    for _ in range(40):
        gt = random_labels(rng, int(rng.integers(0, 6)))
        moved = np.roll(gt, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))  # overlaps of all sizes
        pred = np.where(rng.random() < 0.7, moved, random_labels(rng, int(rng.integers(0, 6))))
        pairs.append((gt, pred))
    assert sum(not gt.any() and not pred.any() for gt, pred in pairs) >= 2
    per_image = []
    for gt, pred in pairs:
        expected = [original_f1(gt, pred, t) for t in CAICEDO_THRESHOLDS]
        got = mean_average_f1(gt, pred)
        assert list(got["f1_per_threshold"].values()) == pytest.approx(expected, abs=1e-6)
        per_image.append(np.mean(expected))
    metric = InstanceF1Metric()
    metric([torch.as_tensor(pred)[None] for _, pred in pairs], [torch.as_tensor(gt)[None] for gt, _ in pairs])
    assert metric.aggregate().item() == pytest.approx(np.mean(per_image), abs=1e-6)
    assert min(per_image) == 0 and max(per_image) > 0.99 and any(0 < f1 < 0.99 for f1 in per_image)


def test_cumulative_metric_aggregates_images_and_thresholds():
    gt = torch.as_tensor(square(np.zeros((20, 20), int), 0, 0, 5, 1))[None]
    wrong = torch.zeros_like(gt)
    metric = InstanceF1Metric()
    metric([gt, gt], [gt, gt])  # two perfect images
    metric([wrong], [gt])  # one image with the object missed
    assert metric.get_buffer().shape == (3, len(CAICEDO_THRESHOLDS))
    assert metric.aggregate().item() == pytest.approx(2 / 3)
