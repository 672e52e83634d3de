"""AdipocyteScores against scikit-image and NumPy: SSIM as tf.image.ssim computes it, PSNR, MSE, MAE / median."""

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common.metrics import AdipocyteScores, mae_over_median, median


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
        (item["id"], "40x", "C01", "40x_c01"), (item["id"], "40x", "C03", "40x_c03")]
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
