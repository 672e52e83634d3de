"""Image-to-image metrics of the Light My Cells challenge (France-BioImaging, ISBI 2024), in torch.

The challenge's evaluator normalises ground truth and prediction each by their own 2nd and 99.8th percentiles,
``(x - p2) / (p99.8 - p2)`` without clipping (an image whose two percentiles coincide is left as it is), then
scores every organelle by Pearson's correlation (``scipy.stats.pearsonr``, NaN counted as 0) and SSIM
(``skimage.metrics.structural_similarity`` with the larger of the two images' value ranges as data range),
and nucleus and mitochondria also by the mean absolute error, the Euclidean distance and the cosine distance
of the flattened images. The functions here compute the same values on (..., H, W) tensors, one score per
leading index, in float64 on the tensors' device.

A (B, C, H, W) label may hold NaN channels for targets an image lacks (:class:`common.transforms.ConcatChannelsd`):
they get NaN scores and are skipped by :class:`FluorescenceMetric`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.metrics import CumulativeIterationMetric

from common.ops import pearson_correlation, scale_percentiles

__all__ = [
    "LMC_METRICS",
    "normalise_for_metrics",
    "structural_similarity",
    "mean_absolute_error",
    "euclidean_distance",
    "cosine_distance",
    "light_my_cells_metrics",
    "FluorescenceMetric",
    "LightMyCellsScore",
]

#: metrics the challenge reports per organelle, named as in its evaluator.
LMC_METRICS = {
    "Nucleus": ("PCC", "SSIM", "MAE", "E_dist", "C_dist"),
    "Mitochondria": ("PCC", "SSIM", "MAE", "E_dist", "C_dist"),
    "Tubulin": ("PCC", "SSIM"),
    "Actin": ("PCC", "SSIM"),
}


def _pair(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.shape != y.shape or x.ndim < 2:
        raise ValueError(f"expected two (..., H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}.")
    return x.to(torch.float64), y.to(x.device, torch.float64)


def normalise_for_metrics(image, lower: float = 2.0, upper: float = 99.8) -> torch.Tensor:
    """The evaluator's ``(x - p2) / (p99.8 - p2)`` per (H, W) plane, unclipped, float64; unchanged when p2 == p99.8."""
    return scale_percentiles(torch.as_tensor(image).to(torch.float64), lower, upper, clip=False, constant="keep")


def structural_similarity(x, y, data_range, win_size: int = 7, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Mean SSIM of each pair of (H, W) planes as ``skimage.metrics.structural_similarity`` computes it by default.

    Uniform ``win_size`` x ``win_size`` windows, sample covariances, constants ``(k1 R)^2`` and ``(k2 R)^2``,
    averaged over the windows that fit inside the image (skimage's mean after cropping ``win_size // 2``).
    Where ``data_range`` R is 0 (two constant images) skimage divides 0 by 0; here the luminance and
    structure terms are then taken as 1 where both their numerator and denominator vanish, so identical
    constant images score 1 and the result is never NaN.

    Args:
        x, y: (..., H, W) tensors, H and W at least ``win_size``.
        data_range: R, a number or a (...) tensor (one per plane).

    Returns:
        (...) float64 tensor.
    """
    x, y = _pair(x, y)
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"images of size {tuple(x.shape[-2:])} are smaller than the {win_size}² SSIM window.")
    lead = x.shape[:-2]
    planes = torch.stack([x, y]).reshape(2, -1, 1, *x.shape[-2:])

    def window_mean(image: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(image, win_size, stride=1)

    mx, my = window_mean(planes[0]), window_mean(planes[1])
    covariance_norm = win_size**2 / (win_size**2 - 1.0)
    vx = covariance_norm * (window_mean(planes[0] * planes[0]) - mx * mx)
    vy = covariance_norm * (window_mean(planes[1] * planes[1]) - my * my)
    vxy = covariance_norm * (window_mean(planes[0] * planes[1]) - mx * my)
    data_range = torch.as_tensor(data_range, dtype=torch.float64, device=x.device).expand(lead).reshape(-1, 1, 1, 1)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    luminance = _ratio(2 * mx * my + c1, mx * mx + my * my + c1)
    structure = _ratio(2 * vxy + c2, vx + vy + c2)
    return (luminance * structure).mean(dim=(-3, -2, -1)).reshape(lead)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, 1 where both are 0."""
    undefined = (denominator == 0) & (numerator == 0)
    return torch.where(undefined, torch.ones_like(numerator), numerator / torch.where(undefined, 1.0, denominator))


def mean_absolute_error(x, y) -> torch.Tensor:
    """Mean |x - y| of each pair of (H, W) planes, float64."""
    x, y = _pair(x, y)
    return (x - y).abs().mean(dim=(-2, -1))


def euclidean_distance(x, y) -> torch.Tensor:
    """Euclidean distance between each pair of flattened (H, W) planes, float64."""
    x, y = _pair(x, y)
    return (x - y).square().sum(dim=(-2, -1)).sqrt()


def cosine_distance(x, y) -> torch.Tensor:
    """``|1 - x.y / (|x| |y|)|`` of each pair of flattened (H, W) planes, float64, in [0, 2].

    A zero plane has cosine similarity 0 with anything (distance 1), as in scikit-learn's
    ``cosine_distances`` that the evaluator calls.
    """
    x, y = _pair(x, y)
    norms = x.square().sum(dim=(-2, -1)).sqrt() * y.square().sum(dim=(-2, -1)).sqrt()
    similarity = (x * y).sum(dim=(-2, -1)) / torch.where(norms == 0, 1.0, norms)
    return (1.0 - similarity).clamp(0.0, 2.0).abs()


def light_my_cells_metrics(pred, target) -> dict[str, torch.Tensor]:
    """The challenge's five scores of every pair of (H, W) planes, after its percentile normalisation.

    Args:
        pred: (..., H, W) predictions.
        target: (..., H, W) ground truth.

    Returns:
        ``{"PCC", "SSIM", "MAE", "E_dist", "C_dist"}`` -> (...) float64 tensors; PCC is 0 where a normalised
        image is constant (NaN in scipy). Which of them the challenge reports depends on the organelle
        (:data:`LMC_METRICS`).
    """
    pred, target = normalise_for_metrics(pred), normalise_for_metrics(target)
    pred = pred.to(target.device)
    value_range = torch.maximum(
        pred.amax(dim=(-2, -1)) - pred.amin(dim=(-2, -1)), target.amax(dim=(-2, -1)) - target.amin(dim=(-2, -1))
    )
    return {
        "PCC": torch.nan_to_num(pearson_correlation(target, pred), nan=0.0),
        "SSIM": structural_similarity(target, pred, value_range),
        "MAE": mean_absolute_error(target, pred),
        "E_dist": euclidean_distance(target, pred),
        "C_dist": cosine_distance(target, pred),
    }


class FluorescenceMetric(CumulativeIterationMetric):
    """One Light My Cells score per image and channel; ``aggregate`` averages the channels the labels have.

    For ``IgniteMetricHandler``: ``y_pred`` (B, C, H, W) predictions, ``y`` (B, C, H, W) targets with NaN
    channels where an image has no target. :meth:`aggregate` is the mean over every (image, channel) pair
    with a target, restricted to ``channels`` when given (e.g. ``[3]`` to select actin in LMC order).

    Args:
        metric: one of ``"PCC"``, ``"SSIM"``, ``"MAE"``, ``"E_dist"``, ``"C_dist"``.
        channels: channel indices to average; None for all.
    """

    def __init__(self, metric: str = "PCC", channels: Sequence[int] | None = None) -> None:
        super().__init__()
        if metric not in LMC_METRICS["Nucleus"]:
            raise ValueError(f"metric: expected one of {LMC_METRICS['Nucleus']}, got {metric!r}.")
        self.metric = metric
        self.channels = None if channels is None else list(channels)

    def _compute_tensor(  # type: ignore[override]  # MONAI's base has y=None, **kwargs; its metrics narrow it too
        self, y_pred: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """(B, C, H, W) prediction and target -> (B, C) scores, NaN where the target channel is missing."""
        if y_pred.shape != y.shape:
            raise ValueError(f"y_pred and y shapes differ: {tuple(y_pred.shape)} vs {tuple(y.shape)}.")
        present = torch.isfinite(y).all(dim=-1).all(dim=-1)
        scores = torch.full(present.shape, float("nan"), dtype=torch.float64, device=y.device)
        if present.any():
            scores[present] = light_my_cells_metrics(y_pred[present], y[present])[self.metric]
        return scores if self.channels is None else scores[:, self.channels]

    def aggregate(self) -> torch.Tensor:
        """Mean score over the (image, channel) pairs with a target seen since the last reset."""
        buffer = self.get_buffer()
        if not isinstance(buffer, torch.Tensor) or not torch.isfinite(buffer).any():
            raise RuntimeError(f"FluorescenceMetric: no target was seen, no {self.metric} to aggregate.")
        return buffer[torch.isfinite(buffer)].mean().to(torch.float32)


class LightMyCellsScore:
    """Rows of the challenge's scores for ``common.handlers.MetricsReport``: one per organelle an image has.

    ``score(pred, label, item)`` with (C, H, W) ``pred`` and ``label`` in the channel order of ``organelles``
    (NaN label channels for absent targets) gives ``{"organelle": name, <metric>: value, ...}`` per present
    organelle, with the metrics :data:`LMC_METRICS` lists for it. For each of ``cross_keys`` the item has
    (e.g. the input ``modality``, the ``z_offset`` from the best focal plane), the row also gets
    ``"organelle_<key>": "<organelle> <value>"``, so that the report can average per organelle and that
    field together, as the challenge's evaluator does.
    """

    def __init__(
        self,
        organelles: Sequence[str],
        metrics: Mapping[str, Sequence[str]] = LMC_METRICS,
        cross_keys: str | Sequence[str] = ("modality",),
    ) -> None:
        missing = [name for name in organelles if name not in metrics]
        if missing:
            raise ValueError(f"metrics: no metric list for {missing}.")
        self.organelles, self.metrics = list(organelles), dict(metrics)
        self.cross_keys = (cross_keys,) if isinstance(cross_keys, str) else tuple(cross_keys)

    def __call__(self, pred, label, item: Mapping | None = None) -> list[dict]:
        pred, label = torch.as_tensor(pred), torch.as_tensor(label)
        if pred.shape != label.shape or pred.shape[0] != len(self.organelles):
            raise ValueError(
                f"expected (C, H, W) pred and label with C = {len(self.organelles)} organelles, "
                f"got {tuple(pred.shape)} and {tuple(label.shape)}."
            )
        present = torch.isfinite(label).all(dim=-1).all(dim=-1).tolist()
        channels = [index for index, here in enumerate(present) if here]
        if not channels:
            return []
        scores = light_my_cells_metrics(pred[channels], label[channels])
        rows = []
        for position, index in enumerate(channels):
            name = self.organelles[index]
            row = {"organelle": name, **{metric: float(scores[metric][position]) for metric in self.metrics[name]}}
            for key in self.cross_keys:
                if item is not None and key in item:
                    row[f"organelle_{key}"] = f"{name} {item[key]}"
            rows.append(row)
        return rows
