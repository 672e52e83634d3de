"""Light My Cells metrics against the challenge evaluator's steps computed with NumPy, SciPy and scikit-image."""

import warnings

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from scipy.spatial import distance
from scipy.stats import pearsonr
from skimage.metrics import structural_similarity as skimage_ssim

from common.handlers import MetricsReport
from common.metrics import (
    FluorescenceMetric,
    LightMyCellsScore,
    cosine_distance,
    euclidean_distance,
    light_my_cells_metrics,
    structural_similarity,
)
from common.ops import pearson_correlation


def evaluator_normalise(image):
    """(x - p2) / (p99.8 - p2), the image itself when the percentiles coincide (the evaluator's rule)."""
    low, high = np.percentile(image, 2), np.percentile(image, 99.8)
    return image if low == high else (image - low) / (high - low)


def reference_metrics(pred, gt) -> dict:
    """The five scores of one image pair computed independently, with NumPy / SciPy / scikit-image."""
    gt, pred = evaluator_normalise(gt.astype(np.float64)), evaluator_normalise(pred.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input and returns NaN
        pcc = pearsonr(gt.ravel(), pred.ravel())[0]
    data_range = max(np.ptp(pred), np.ptp(gt))
    zero = not gt.any() or not pred.any()
    return {
        "PCC": 0.0 if np.isnan(pcc) else pcc,
        "SSIM": skimage_ssim(gt, pred, data_range=data_range),
        "MAE": np.abs(gt - pred).mean(),
        "E_dist": distance.euclidean(gt.ravel(), pred.ravel()),
        "C_dist": 1.0 if zero else abs(distance.cosine(gt.ravel(), pred.ravel())),
    }


def assert_matches(pred, gt):
    result = light_my_cells_metrics(torch.from_numpy(pred), torch.from_numpy(gt))
    expected = reference_metrics(pred, gt)
    for name, value in expected.items():
        assert np.isfinite(result[name].item()), name
        assert result[name].item() == pytest.approx(value, rel=1e-6, abs=1e-9), name


def fluorescence_like(rng, shape=(48, 64)):
    """uint16 image of blurred blobs plus noise."""
    from scipy.ndimage import gaussian_filter

    spots = gaussian_filter((rng.random(shape) > 0.97).astype(float), 2.0)
    return (3000 * spots / spots.max() + rng.normal(200, 20, shape)).clip(0, 65535).astype(np.uint16)


@pytest.mark.parametrize("seed", range(4))
def test_random_pairs_match_the_references(seed):
    rng = np.random.default_rng(seed)
    gt = fluorescence_like(rng)
    pred = (gt / 3000.0 + rng.normal(0, 0.3, gt.shape)).astype(np.float32)
    assert_matches(pred, gt)
    assert_matches(rng.random(gt.shape).astype(np.float32), gt)  # unrelated prediction


def test_edge_cases_are_defined_and_match_the_references():
    rng = np.random.default_rng(7)
    gt = fluorescence_like(rng)
    assert_matches(np.zeros(gt.shape, np.float32), gt)  # all-zero prediction: PCC 0, cosine distance 1
    assert_matches(np.full(gt.shape, 0.5, np.float32), gt)  # constant prediction
    assert_matches(rng.random(gt.shape).astype(np.float32), np.full(gt.shape, 100, np.uint16))  # constant truth
    sparse = np.zeros(gt.shape, np.uint16)
    sparse[10, 10] = 500  # p2 == p99.8: left unnormalised, as the evaluator does
    assert_matches(rng.random(gt.shape).astype(np.float32), sparse)
    result = light_my_cells_metrics(torch.zeros(1, 32, 32), torch.zeros(1, 32, 32))
    assert result["PCC"].item() == 0.0 and result["C_dist"].item() == 1.0 and result["E_dist"].item() == 0.0


def test_two_constant_images_get_a_defined_ssim_where_scikit_image_divides_zero_by_zero():
    same = structural_similarity(torch.full((16, 16), 3.0), torch.full((16, 16), 3.0), data_range=0.0)
    assert same.item() == 1.0
    different = structural_similarity(torch.zeros(16, 16), torch.full((16, 16), 3.0), data_range=0.0)
    assert different.item() == 0.0  # no luminance in common


def test_batched_scores_equal_one_image_at_a_time():
    rng = np.random.default_rng(3)
    gt = np.stack([fluorescence_like(rng) for _ in range(6)]).reshape(2, 3, 48, 64)
    pred = rng.random(gt.shape).astype(np.float32) + gt / 3000.0
    batched = light_my_cells_metrics(torch.from_numpy(pred), torch.from_numpy(gt))
    for b in range(2):
        for c in range(3):
            single = light_my_cells_metrics(torch.from_numpy(pred[b, c]), torch.from_numpy(gt[b, c]))
            for name in single:
                assert batched[name][b, c].item() == pytest.approx(single[name].item(), rel=1e-10)


def test_pearson_with_epsilon_and_mask():
    rng = np.random.default_rng(5)
    x, y = rng.random((20, 30)), rng.random((20, 30))
    mask = rng.random((20, 30)) > 0.4
    masked = pearson_correlation(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(mask))
    assert masked.item() == pytest.approx(pearsonr(x[mask], y[mask])[0], rel=1e-10)
    exact = pearson_correlation(torch.from_numpy(x), torch.from_numpy(y))
    smoothed = pearson_correlation(torch.from_numpy(x), torch.from_numpy(y), epsilon=1e-6)
    assert abs(smoothed.item()) < abs(exact.item()) and smoothed.item() == pytest.approx(exact.item(), rel=1e-4)


def test_distances_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        euclidean_distance(torch.zeros(4, 4), torch.zeros(4, 5))
    with pytest.raises(ValueError, match="smaller than"):
        structural_similarity(torch.zeros(5, 9), torch.zeros(5, 9), 1.0)
    assert cosine_distance(torch.ones(3, 3), -torch.ones(3, 3)).item() == pytest.approx(2.0)


def test_metric_class_skips_missing_channels_and_averages_the_rest():
    rng = np.random.default_rng(9)
    gt = torch.from_numpy(np.stack([fluorescence_like(rng) for _ in range(4)]).astype(np.float32)).reshape(2, 2, 48, 64)
    pred = gt + torch.from_numpy(rng.normal(0, 300, gt.shape).astype(np.float32))
    label = gt.clone()
    label[0, 1] = float("nan")  # image 0 has no target in channel 1
    metric = FluorescenceMetric("PCC")
    metric(pred, label)
    scores = light_my_cells_metrics(pred, gt)["PCC"]
    expected = (scores[0, 0] + scores[1, 0] + scores[1, 1]) / 3
    assert metric.aggregate().item() == pytest.approx(expected.item(), rel=1e-6)
    only_channel_1 = FluorescenceMetric("PCC", channels=[1])
    only_channel_1(pred, label)
    assert only_channel_1.aggregate().item() == pytest.approx(scores[1, 1].item(), rel=1e-6)
    empty = FluorescenceMetric("SSIM")
    empty(pred, torch.full_like(label, float("nan")))
    with pytest.raises(RuntimeError, match="no target"):
        empty.aggregate()


def test_report_rows_one_per_present_organelle_with_its_metrics():
    rng = np.random.default_rng(11)
    organelles = ["Nucleus", "Mitochondria", "Tubulin", "Actin"]
    gt = torch.from_numpy(np.stack([fluorescence_like(rng) for _ in range(4)]).astype(np.float32))
    pred = torch.rand(gt.shape)
    label = gt.clone()
    label[[1, 2]] = float("nan")  # only nucleus and actin targets
    rows = LightMyCellsScore(organelles)(pred, label, {"modality": "PC"})
    assert [row["organelle"] for row in rows] == ["Nucleus", "Actin"]
    assert set(rows[0]) == {"organelle", "PCC", "SSIM", "MAE", "E_dist", "C_dist", "organelle_modality"}
    assert set(rows[1]) == {"organelle", "PCC", "SSIM", "organelle_modality"}
    assert rows[1]["organelle_modality"] == "Actin PC"
    crossed = LightMyCellsScore(organelles, cross_keys=["modality", "z_offset"])(
        pred, label, {"modality": "PC", "z_offset": 2}
    )
    assert crossed[1]["organelle_z_offset"] == "Actin 2" and crossed[1]["organelle_modality"] == "Actin PC"
    expected = reference_metrics(pred[3].numpy(), gt[3].numpy())
    assert rows[1]["PCC"] == pytest.approx(expected["PCC"], rel=1e-6)
    assert rows[1]["SSIM"] == pytest.approx(expected["SSIM"], rel=1e-6)
    assert LightMyCellsScore(organelles)(pred, torch.full_like(label, float("nan"))) == []
    with pytest.raises(ValueError, match="C = 4 organelles"):
        LightMyCellsScore(organelles)(pred[:3], label[:3])


def test_report_groups_per_organelle_and_z_distance_as_the_evaluator_aggregates(tmp_path):
    """MetricsReport + LightMyCellsScore against the evaluator's per-organelle, per-|z - best z| means
    (its ``calcul_mean_z``) and per-modality means (``calcul_mean_tl``), recomputed with SciPy / scikit-image."""
    rng = np.random.default_rng(5)
    organelles = ["Nucleus", "Mitochondria", "Tubulin", "Actin"]
    # (modality, |z - best z|, organelles present) of six input slices
    slices = [("BF", 0, "NMA"), ("BF", 1, "NM"), ("PC", 1, "NTA"), ("BF", 12, "NMTA"), ("DIC", 2, "N"), ("PC", 0, "MA")]
    batches, expected_rows = [], []
    for index, (modality, offset, present) in enumerate(slices):
        gt = np.stack([fluorescence_like(rng) for _ in organelles]).astype(np.float32)
        pred = np.clip(gt + rng.normal(0, 0.3 * gt.std(), gt.shape), 0, None).astype(np.float32)
        label = gt.copy()
        for channel, name in enumerate(organelles):
            if name[0] not in present:
                label[channel] = np.nan
            else:
                scores = reference_metrics(pred[channel], gt[channel])
                kept = ("PCC", "SSIM") if name in ("Tubulin", "Actin") else tuple(scores)  # the evaluator's lists
                expected_rows.append((name, modality, offset, {metric: scores[metric] for metric in kept}))
        image = MetaTensor(torch.zeros(1, 2, 2), meta={"filename_or_obj": f"/in/image_{index}_{modality}_z0.ome.tiff"})
        batches.append(
            [
                {
                    "image": image,
                    "pred": torch.from_numpy(pred),
                    "label": torch.from_numpy(label),
                    "input_modality": modality,
                    "z_offset": offset,
                }
            ]
        )
    report = MetricsReport(
        str(tmp_path),
        LightMyCellsScore(organelles, cross_keys=["input_modality", "z_offset"]),
        group_by=["organelle_z_offset", "z_offset", "organelle_input_modality"],
    )
    engine = Engine(lambda engine, batch: batch)
    report.attach(engine)
    report.write = lambda engine: None  # the grouping is checked, not the files
    engine.run(batches, max_epochs=1)
    groups = report.summary()["groups"]

    def means(key):
        table = {}
        for name, modality, offset, scores in expected_rows:
            table.setdefault(key(name, modality, offset), []).append(scores)
        return {
            group: {metric: np.mean([scores[metric] for scores in members]) for metric in members[0]}
            | {"rows": len(members)}
            for group, members in table.items()
        }

    per_z = means(lambda name, modality, offset: f"{name} {offset}")
    assert list(groups["organelle_z_offset"]) == [
        "Actin 0",
        "Actin 1",
        "Actin 12",
        "Mitochondria 0",
        "Mitochondria 1",
        "Mitochondria 12",
        "Nucleus 0",
        "Nucleus 1",
        "Nucleus 2",
        "Nucleus 12",
        "Tubulin 1",
        "Tubulin 12",
    ]  # numbers by value
    for group, expected in per_z.items():
        got = groups["organelle_z_offset"][group]
        assert set(got) == set(expected), group  # actin and tubulin have PCC and SSIM only
        for metric, value in expected.items():
            assert got[metric] == pytest.approx(value, rel=1e-5, abs=1e-6), (group, metric)
    assert list(groups["z_offset"]) == ["0", "1", "2", "12"]
    assert groups["z_offset"]["1"]["rows"] == 5 and groups["z_offset"]["1"]["PCC"] == pytest.approx(
        np.mean([scores["PCC"] for _, _, offset, scores in expected_rows if offset == 1]), rel=1e-5
    )
    per_modality = means(lambda name, modality, offset: f"{name} {modality}")
    for group, expected in per_modality.items():
        assert groups["organelle_input_modality"][group]["PCC"] == pytest.approx(expected["PCC"], rel=1e-5), group
