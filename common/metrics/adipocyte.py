"""Scores of predicted adipocyte fluorescence against the acquired image, one row per channel.

* MSE, SSIM and PSNR as the Bug Hunters report measured them (TensorFlow ``tf.image.ssim`` and
  ``tf.image.psnr`` with ``max_val`` 65535): SSIM with an 11 x 11 Gaussian window of sigma 1.5, k1 = 0.01,
  k2 = 0.03, over valid window positions, which MONAI's ``compute_ssim_and_cs`` (``SSIMMetric``) computes the
  same way.
* The Adipocyte Cell Imaging Challenge's pixel metric (lower is better), per image and channel (mean absolute
  error over the target's median) and as the challenge computed it (:class:`PooledMaeOverMedian`).

The challenge's evaluation notebook (``evaluation_code/hackathon_evaluation_metrics.ipynb`` of
aidotse/adipocyte_cell_challenge) stacks all images of a magnification and channel and divides the mean absolute
error over all their pixels by the median of all their target pixels; the pixel score of a magnification is the
mean of its three channels, and the final score weighs each magnification by its number of images,
``(n_20 S_20 + n_40 S_40 + n_60 S_60) / n``. A mean of per-image ratios differs from this wherever images differ
in brightness.

With ``data_range`` 65535, SSIM's stability constants are (655)² and (1966)², large next to the variances of
images that use a small part of the 16-bit range, so SSIM stays near 1 for rough predictions; pass the
targets' actual range (e.g. their maximum) for a more discriminating SSIM and PSNR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial

import torch
from monai.data import MetaTensor
from monai.metrics import compute_ssim_and_cs

from common.ops import median

from .fluorescence import mean_absolute_error

__all__ = ["AdipocyteScores", "PooledMaeOverMedian", "mae_over_median", "median_of_counts", "psnr"]


def _tensor(values) -> torch.Tensor:
    """A plain float tensor of ``values`` (MetaTensor, tensor or array)."""
    return (values.as_tensor() if isinstance(values, MetaTensor) else torch.as_tensor(values)).float()


def psnr(mse: float, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range² / mse)`` (infinite for identical images)."""
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def mae_over_median(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean absolute error of ``pred`` against ``target`` over the target's median; NaN when that median is <= 0."""
    middle = float(median(target))
    if middle <= 0:
        return math.nan
    return float(mean_absolute_error(pred, target)) / middle


def median_of_counts(values: torch.Tensor, counts: torch.Tensor) -> float:
    """NumPy's median of a sample given as sorted distinct ``values`` (K,) and their ``counts`` (K,)."""
    cumulative = counts.cumsum(0)
    total = int(cumulative[-1])
    if total == 0:
        raise ValueError("counts: the median of an empty sample is undefined.")
    # the k-th (0-based) smallest element is the first value whose cumulative count exceeds k
    middle = torch.tensor([(total - 1) // 2, total // 2], dtype=cumulative.dtype, device=cumulative.device)
    return float(values[torch.searchsorted(cumulative, middle, right=True)].double().mean())


class _Pool:
    """Running sums of one (magnification, channel): absolute error, pixel count, target value counts."""

    def __init__(self) -> None:
        self.abs_error, self.pixels = 0.0, 0
        self.values: torch.Tensor | None = None
        self.counts: torch.Tensor | None = None

    def add(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.abs_error += float((pred.double() - target.double()).abs().sum())
        self.pixels += target.numel()
        values, counts = torch.unique(target.reshape(-1), return_counts=True)
        self._count(values.double().cpu(), counts.cpu())

    def merge(self, other: _Pool) -> None:
        """Add the images pooled in ``other`` (e.g. another rank's) to this pool."""
        self.abs_error += other.abs_error
        self.pixels += other.pixels
        if other.values is not None and other.counts is not None:
            self._count(other.values, other.counts)

    def _count(self, values: torch.Tensor, counts: torch.Tensor) -> None:
        """Add ``counts`` (K,) of the distinct sorted ``values`` (K,) to the value counts."""
        if (
            self.values is not None and self.counts is not None
        ):  # merge with the values seen so far (16-bit targets: at most 65536 of them)
            values, inverse = torch.unique(torch.cat([self.values, values]), return_inverse=True)
            merged = torch.zeros_like(values, dtype=counts.dtype)
            counts = merged.scatter_add_(0, inverse, torch.cat([self.counts, counts]))
        self.values, self.counts = values, counts

    def score(self) -> float:
        assert self.values is not None and self.counts is not None, "score of a pool without images"
        middle = median_of_counts(self.values, self.counts)
        return math.nan if middle <= 0 else self.abs_error / self.pixels / middle


class PooledMaeOverMedian:
    """The challenge's pixel metric, accumulated image by image over an evaluation run.

    ``update(pred, target, magnification, channels)`` takes one image's (C, H, W) prediction and target and the
    names of its magnification (``"20x"``) and C channels (``["C01", ...]``). :meth:`aggregate` returns, per
    magnification and channel, ``sum |pred - target| / pixels / median(targets)`` over all images of that pair
    (NaN where that median is <= 0), per magnification the mean over its channels, the image counts and the
    image-weighted mean over magnifications (``total``). Target medians are exact: the distinct target values
    are counted (at most 65536 for 16-bit images), not stored pixel by pixel.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.pools: dict[str, dict[str, _Pool]] = {}
        self.images: dict[str, int] = {}

    def update(self, pred: torch.Tensor, target: torch.Tensor, magnification: str, channels: Sequence[str]) -> None:
        if pred.shape != target.shape or pred.shape[0] != len(channels):
            raise ValueError(
                f"pred, target and channels: expected (C, H, W) twice and C names, got {tuple(pred.shape)}, "
                f"{tuple(target.shape)} and {list(channels)}."
            )
        pools = self.pools.setdefault(magnification, {})
        for channel, p, t in zip(channels, pred, target):
            pools.setdefault(channel, _Pool()).add(p, t)
        self.images[magnification] = self.images.get(magnification, 0) + 1

    def merge(self, other: PooledMaeOverMedian) -> None:
        """Add the images pooled in ``other`` (e.g. another rank's) to this pool."""
        for magnification, pools in other.pools.items():
            for channel, pool in pools.items():
                self.pools.setdefault(magnification, {}).setdefault(channel, _Pool()).merge(pool)
        for magnification, count in other.images.items():
            self.images[magnification] = self.images.get(magnification, 0) + count

    def aggregate(self) -> dict:
        """``{"per_channel": {m: {c: score}}, "per_magnification": {m: score}, "images": {m: n}, "total": score}``."""
        per_channel = {
            m: {c: pool.score() for c, pool in sorted(pools.items())} for m, pools in sorted(self.pools.items())
        }
        per_magnification = {m: sum(scores.values()) / len(scores) for m, scores in per_channel.items()}
        images = {m: self.images[m] for m in per_magnification}
        total = sum(images[m] * score for m, score in per_magnification.items()) / max(sum(images.values()), 1)
        return {"per_channel": per_channel, "per_magnification": per_magnification, "images": images, "total": total}


class AdipocyteScores:
    """Score function of :class:`common.handlers.MetricsReport`: per channel MSE, SSIM, PSNR and MAE / median.

    Args:
        data_range: intensity range of SSIM and PSNR (65535: 16-bit, as the method).
        win_size, kernel_sigma, k1, k2: SSIM's Gaussian window and constants (those of ``tf.image.ssim``).
        channels_key: entry naming the channels of ``pred`` and ``label`` (e.g. ``[1, 3]`` -> ``C01``, ``C03``);
            absent: ``C01``, ``C02``, ... in order.
        group_keys: entries copied into every row (e.g. ``magnification``, written as ``20x``).
        id_key: entry naming the image in the rows (absent: the MetricsReport's file name).

    Entries are looked up in the item and in the prediction's meta data (where
    :class:`common.transforms.CopyItemsToMetad` puts them, since engine outputs keep only image, label and pred).

    ``__call__(pred, label, item)`` takes (C, H, W) prediction and target (tensors or arrays, same shape) and
    returns C rows ``{"image", "magnification", "channel", "model", "mse", "ssim", "psnr", "mae_over_median"}``,
    ``model`` naming the (magnification, channel) pair as the checkpoints do (``20x_c01``). It also pools every
    pair into a :class:`PooledMaeOverMedian`: :meth:`summary` gives the challenge's score over the images seen since
    :meth:`reset` (``MetricsReport`` calls both).
    """

    def __init__(
        self,
        data_range: float = 65535.0,
        win_size: int = 11,
        kernel_sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        channels_key: str = "channels",
        group_keys: Sequence[str] = ("magnification",),
        id_key: str | None = "id",
    ) -> None:
        self.data_range = float(data_range)
        self.ssim_and_cs = partial(
            compute_ssim_and_cs,
            spatial_dims=2,
            data_range=self.data_range,
            kernel_size=(win_size, win_size),
            kernel_sigma=(kernel_sigma, kernel_sigma),
            k1=k1,
            k2=k2,
        )
        self.channels_key, self.group_keys, self.id_key = channels_key, tuple(group_keys), id_key
        self.pooled = PooledMaeOverMedian()

    def reset(self) -> None:
        """Forget the pooled images (start of an evaluation run)."""
        self.pooled.reset()

    def state(self) -> PooledMaeOverMedian:
        """The pooled images (picklable), for :meth:`merge_states` on another process."""
        return self.pooled

    def merge_states(self, states: Sequence[PooledMaeOverMedian]) -> None:
        """Pool the images of ``states`` (every rank's :meth:`state`, this one's included) in place of this
        score's own."""
        pooled = PooledMaeOverMedian()
        for state in states:
            pooled.merge(state)
        self.pooled = pooled

    def summary(self) -> dict:
        """The challenge's pixel metric over the images scored since :meth:`reset`: ``challenge_mae_over_median``
        (the image-weighted total) and ``challenge_pixel_metric`` (per magnification and channel, image counts)."""
        pooled = self.pooled.aggregate()
        return {"challenge_mae_over_median": pooled.pop("total"), "challenge_pixel_metric": pooled}

    def _channel_names(self, item: Mapping, count: int) -> list[str]:
        channels = item.get(self.channels_key)
        if channels is None:
            return [f"C{index + 1:02d}" for index in range(count)]
        numbers = [int(channel) for channel in channels]
        if len(numbers) != count:
            raise ValueError(f"{self.channels_key}: names {len(numbers)} channels, the prediction has {count}.")
        return [f"C{number:02d}" for number in numbers]

    def _group_values(self, item: Mapping) -> dict:
        values = {}
        for key in self.group_keys:
            if key in item:
                value = item[key]
                value = value.item() if isinstance(value, torch.Tensor) else value
                values[key] = f"{value}x" if key == "magnification" else str(value)
        return values

    def __call__(self, pred, label, item: Mapping | None = None) -> list[dict]:
        item = {**(getattr(pred, "meta", None) or {}), **(item or {})}
        pred, label = _tensor(pred), _tensor(label).to(_tensor(pred).device)
        if pred.shape != label.shape or pred.ndim != 3:
            raise ValueError(
                f"pred and label: expected (C, H, W) of one shape, got {tuple(pred.shape)} and {tuple(label.shape)}."
            )
        names = self._channel_names(item, pred.shape[0])
        # channels as a batch of (1, H, W) images: one SSIM per channel
        ssim_map, _ = self.ssim_and_cs(pred[:, None], label[:, None])
        ssim = ssim_map.flatten(1).mean(1)
        self.pooled.update(pred, label, self._group_values(item).get("magnification", "all"), names)
        mse = (pred.double() - label.double()).square().flatten(1).mean(1)
        rows = []
        for index, name in enumerate(names):
            row: dict[str, object] = {"image": str(item[self.id_key])} if self.id_key and self.id_key in item else {}
            row.update(self._group_values(item))
            magnification = row.get("magnification")
            row.update(
                channel=name,
                model=f"{magnification}_c{name[1:]}" if magnification else name,
                mse=float(mse[index]),
                ssim=float(ssim[index]),
                psnr=psnr(float(mse[index]), self.data_range),
                mae_over_median=mae_over_median(pred[index], label[index]),
            )
            rows.append(row)
        return rows
