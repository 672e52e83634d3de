"""AdipocyteScores against scikit-image and NumPy: SSIM as tf.image.ssim computes it, PSNR, MSE, MAE / median."""

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common.metrics import AdipocyteScores, mae_over_median, median_of_counts
from common.ops import median


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    target = rng.gamma(2.0, 800.0, size=(2, 48, 40)).astype(np.float32) + 300
    pred = (0.8 * target + rng.normal(0, 400, size=target.shape)).clip(0).astype(np.float32)
    return pred, target


def test_scores_match_independent_references(pair):
    pred, target = pair
    item = {"channels": [1, 3], "magnification": torch.tensor(40), "id": "AssayPlate_Greiner_#655090_B02_T0001F001L01"}
    rows = AdipocyteScores(data_range=65535)(torch.from_numpy(pred), torch.from_numpy(target), item)
    assert [(r["image"], r["magnification"], r["channel"], r["model"]) for r in rows] == [
        (item["id"], "40x", "C01", "40x_c01"),
        (item["id"], "40x", "C03", "40x_c03"),
    ]
    for row, p, t in zip(rows, pred.astype(np.float64), target.astype(np.float64)):
        # tf.image.ssim: 11 x 11 Gaussian window, sigma 1.5, population (co)variances, valid windows only, which is
        # skimage's Gaussian SSIM without sample covariance once its border of half a window is left out
        ssim = structural_similarity(
            t, p, data_range=65535, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert row["ssim"] == pytest.approx(ssim, abs=1e-5)
        assert row["psnr"] == pytest.approx(peak_signal_noise_ratio(t, p, data_range=65535), rel=1e-9)
        assert row["mse"] == pytest.approx(np.mean((p - t) ** 2), rel=1e-9)
        assert row["mae_over_median"] == pytest.approx(np.mean(np.abs(p - t)) / np.median(t), rel=1e-9)


def test_ssim_range_decides_how_much_ssim_discriminates(pair):
    pred, target = (torch.from_numpy(a[:1]) for a in pair)
    wide, narrow = AdipocyteScores(65535)(pred, target)[0], AdipocyteScores(float(target.max()))(pred, target)[0]
    assert narrow["ssim"] < wide["ssim"] < 1
    assert AdipocyteScores(65535)(target, target)[0]["ssim"] == pytest.approx(1.0)
    assert AdipocyteScores()(target, target)[0]["psnr"] == math.inf


def test_median_is_numpy_median_and_a_non_positive_median_gives_nan():
    values = torch.tensor([[5.0, 1.0], [4.0, 2.0]])
    assert float(median(values)) == np.median(values.numpy()) == 3.0
    assert float(median(torch.tensor([3.0, 1.0, 2.0]))) == 2.0
    assert math.isnan(mae_over_median(torch.ones(4), torch.tensor([0.0, 0.0, 0.0, 5.0])))


def test_shapes_and_channel_names_are_checked(pair):
    pred, target = (torch.from_numpy(a) for a in pair)
    with pytest.raises(ValueError, match="one shape"):
        AdipocyteScores()(pred, target[:1])
    with pytest.raises(ValueError, match="names 1 channels, the prediction has 2"):
        AdipocyteScores()(pred, target, {"channels": [2]})
    # engine outputs keep only image, label and pred: the sample's fields travel in the prediction's meta data
    rows = AdipocyteScores()(MetaTensor(pred, meta={"channels": [2, 3], "magnification": 60, "id": "P_"}), target, {})
    assert [(row["image"], row["model"]) for row in rows] == [("P_", "60x_c02"), ("P_", "60x_c03")]


def challenge_pixel_score(sets: dict) -> float:
    """The challenge notebook's formula, written out with NumPy: per magnification, each channel's images stacked,
    ``mean |target - pred| / median(target)`` over the stack, averaged over channels; magnifications weighed by
    their image counts."""
    scores, counts = [], []
    for pairs in sets.values():  # pairs: list of (pred (C, H, W), target (C, H, W)), one per image
        preds, targets = np.stack([p for p, _ in pairs]), np.stack([t for _, t in pairs])  # (N, C, H, W)
        channels = [
            np.mean(np.abs(targets[:, c].flatten() - preds[:, c].flatten())) / np.median(targets[:, c])
            for c in range(targets.shape[1])
        ]
        scores.append(np.average(channels))
        counts.append(len(pairs))
    return float(np.sum(np.multiply(counts, scores)) / np.sum(counts))


def test_pooled_score_is_the_challenge_formula_not_a_mean_of_image_ratios():
    rng = np.random.default_rng(1)
    # 20x: a dim and a bright image (per-image ratios and pooling differ); 40x: one image (weights 2 : 1)
    sets = {"20x": [], "40x": []}
    for magnification, brightness in [("20x", 200.0), ("20x", 5000.0), ("40x", 1000.0)]:
        target = rng.integers(0, 2 * brightness, size=(2, 16, 12)).astype(np.float32)
        pred = (target + rng.normal(0, 300, size=target.shape)).clip(0).astype(np.float32)
        sets[magnification].append((pred, target))
    scores = AdipocyteScores()
    rows = [
        row
        for magnification, pairs in sets.items()
        for index, (pred, target) in enumerate(pairs)
        for row in scores(
            torch.from_numpy(pred),
            torch.from_numpy(target),
            {"magnification": int(magnification[:2]), "channels": [1, 2], "id": f"{index}"},
        )
    ]
    summary = scores.summary()
    expected = challenge_pixel_score(sets)
    # rel 1e-6: NumPy sums float32, as the notebook does
    assert summary["challenge_mae_over_median"] == pytest.approx(expected, rel=1e-6)
    details = summary["challenge_pixel_metric"]
    assert details["images"] == {"20x": 2, "40x": 1}
    assert details["per_magnification"]["40x"] == pytest.approx(challenge_pixel_score({"40x": sets["40x"]}), rel=1e-6)
    first = sets["20x"]
    c02 = np.mean(np.abs(np.stack([t[1] - p[1] for p, t in first]))) / np.median(np.stack([t[1] for _, t in first]))
    assert details["per_channel"]["20x"]["C02"] == pytest.approx(c02, rel=1e-6)
    # the per-image table stays, and its mean is a different number on this set
    per_image = np.mean([row["mae_over_median"] for row in rows])
    assert len(rows) == 6 and abs(per_image - expected) > 0.1 * expected
    scores.reset()
    assert scores.summary()["challenge_pixel_metric"]["images"] == {}


@pytest.mark.parametrize("size", [7, 8])
def test_median_of_counts_is_numpy_median(size):
    sample = np.random.default_rng(size).integers(0, 5, size=size).astype(np.float64)
    values, counts = torch.unique(torch.from_numpy(sample), return_counts=True)
    assert median_of_counts(values, counts) == np.median(sample)
