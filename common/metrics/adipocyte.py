"""Scores of predicted adipocyte fluorescence against the acquired image, one row per channel.

* MSE, SSIM and PSNR as the Bug Hunters report measured them (TensorFlow ``tf.image.ssim`` and
  ``tf.image.psnr`` with ``max_val`` 65535): SSIM with an 11 x 11 Gaussian window of sigma 1.5, k1 = 0.01,
  k2 = 0.03, over valid window positions, which MONAI's ``compute_ssim_and_cs`` (``SSIMMetric``) computes the
  same way.
* The Adipocyte Cell Imaging Challenge's pixel metric: mean absolute error divided by the median of the
  target, per channel (lower is better).

With ``data_range`` 65535, SSIM's stability constants are (655)² and (1966)², large next to the variances of
images that use a small part of the 16-bit range, so SSIM stays near 1 for rough predictions; pass the
targets' actual range (e.g. their maximum) for a more discriminating SSIM and PSNR.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from monai.data import MetaTensor
from monai.metrics import compute_ssim_and_cs

from .fluorescence import mean_absolute_error

__all__ = ["AdipocyteScores", "mae_over_median", "median", "psnr"]


def median(values: torch.Tensor) -> torch.Tensor:
    """Median of all elements (the mean of the two middle ones for an even count, as NumPy), any size or device."""
    flat = values.reshape(-1)
    count = flat.numel()
    if count == 0:
        raise ValueError("values: the median of an empty tensor is undefined.")
    low = flat.kthvalue((count + 1) // 2).values
    high = flat.kthvalue(count // 2 + 1).values
    return (low.double() + high.double()) / 2


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
    ``model`` naming the (magnification, channel) pair as the checkpoints do (``20x_c01``).
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
        self.ssim_options = {
            "kernel_size": (win_size, win_size), "kernel_sigma": (kernel_sigma, kernel_sigma), "k1": k1, "k2": k2
        }
        self.channels_key, self.group_keys, self.id_key = channels_key, tuple(group_keys), id_key

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
        ssim_map, _ = compute_ssim_and_cs(
            pred[:, None], label[:, None], spatial_dims=2, data_range=self.data_range, **self.ssim_options
        )
        ssim = ssim_map.flatten(1).mean(1)
        mse = (pred.double() - label.double()).square().flatten(1).mean(1)
        rows = []
        for index, name in enumerate(names):
            row = {"image": str(item[self.id_key])} if self.id_key and self.id_key in item else {}
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
