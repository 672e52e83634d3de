"""Global automatic thresholds of grey images as SimpleITK's histogram threshold filters compute them, in torch.

SimpleITK's ``OtsuThreshold``, ``TriangleThreshold``, ``HuangThreshold`` and ``MaximumEntropyThreshold`` filters
(ITK's ``HistogramThresholdImageFilter`` with its calculators) are reproduced step by step, batched over images:

* the histogram (:func:`image_histograms`): ``N`` bins, :data:`ITK_DEFAULT_BINS` unless given; over a fixed
  range (ITK uses ``[-0.5, 255.5]`` for 8-bit images) or over each image's ``[min, max + (max - min) / N / 100]``
  (ITK's range for other pixel types); bin width computed in float32 as ITK does; bin ``k`` holds
  ``edges[k] <= v < edges[k + 1]``, the maximum in the last bin;
* ``otsu``: the split maximising ``sum_c n_c mean_c^2`` over bin centres (the between-class variance), first
  maximum; the threshold is the upper edge of the split bin;
* ``triangle``: the line from the peak to the bin of the 1 % or the 99 % quantile (whichever is farther), the bin
  farthest below it, plus one; threshold at the centre of that bin;
* ``huang``: Huang and Wang's fuzzy entropy with each class's mean rounded to an integer grey value and looked
  up in the histogram (a split whose lower mean falls outside it is skipped), first minimum; threshold at the
  bin centre;
* ``max_entropy``: Kapur, Sahoo and Wong's sum of class entropies, replaced only when larger by more than 1e-5
  (scanned in order); threshold at the bin centre.

Each method maps ``(B, N)`` counts and ``(B, N + 1)`` bin edges to ``(B,)`` threshold values; the filters mark
pixels ``<= threshold`` (the "inside", value 1, in the LIVECell baseline). Everything stays on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import torch

__all__ = [
    "ITK_DEFAULT_BINS",
    "THRESHOLD_METHODS",
    "image_histograms",
    "otsu_threshold",
    "triangle_threshold",
    "huang_threshold",
    "max_entropy_threshold",
    "threshold_images",
]

#: SimpleITK's default histogram bin count of each filter (``GetNumberOfHistogramBins()``, SimpleITK 2.5).
ITK_DEFAULT_BINS = {"otsu": 128, "triangle": 256, "huang": 128, "max_entropy": 256}


def image_histograms(
    images: torch.Tensor, bins: int, value_range: Sequence[float] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram of each image as ITK's ``ImageToHistogramFilter`` bins it.

    Args:
        images: ``(B, ...)`` real tensor; each batch item is one image.
        bins: number of bins.
        value_range: fixed ``(low, high)`` of the bins (ITK's ``(-0.5, 255.5)`` for 8-bit images), or None for
            each image's minimum to its maximum plus a hundredth of a bin.

    Returns:
        ``(B, N)`` float64 counts and ``(B, N + 1)`` float64 bin edges (the last is the upper bound).
    """
    if bins < 2:
        raise ValueError(f"bins: expected at least 2, got {bins}.")
    flat = images.reshape(images.shape[0], -1).double()
    if value_range is None:
        low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
        high = high + (high - low) / bins / 100.0
    else:
        if len(value_range) != 2 or not value_range[0] < value_range[1]:
            raise ValueError(f"value_range: expected (low, high) with low < high, got {value_range!r}.")
        low = flat.new_full((flat.shape[0], 1), float(value_range[0]))
        high = flat.new_full((flat.shape[0], 1), float(value_range[1]))
    interval = (high.float() - low.float()) / bins  # ITK computes the bin width in float32
    steps = torch.arange(bins, device=flat.device, dtype=torch.float32)
    edges = torch.cat([low + (steps * interval).double(), high], dim=1)
    index = torch.searchsorted(edges[:, 1:-1].contiguous(), flat.contiguous(), right=True)
    inside = (flat >= edges[:, :1]) & (flat <= edges[:, -1:])
    counts = torch.zeros(flat.shape[0], bins, dtype=torch.float64, device=flat.device)
    counts.scatter_add_(1, index, inside.double())
    return counts, edges


def _centres(edges: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` bin centres of ``(B, N + 1)`` edges (ITK's ``GetMeasurement``)."""
    return (edges[:, :-1] + edges[:, 1:]) / 2


def _bin_of(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """``(B, K)`` bin index of ``(B, K)`` values (ITK's ``GetIndex``; the upper bound in the last bin)."""
    return torch.searchsorted(edges[:, 1:-1].contiguous(), values.contiguous(), right=True)


def otsu_threshold(counts: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold, the upper edge of the split bin; ``(B, N)``, ``(B, N + 1)`` -> ``(B,)``."""
    counts = counts.double()
    centres = _centres(edges)
    weight0 = counts.cumsum(1)
    weight1 = counts.sum(1, keepdim=True) - weight0
    moment0 = (counts * centres).cumsum(1)
    moment1 = (counts * centres).sum(1, keepdim=True) - moment0
    mean0 = torch.where(weight0 > 0, moment0 / weight0.clamp_min(1), torch.zeros_like(moment0))
    mean1 = torch.where(weight1 > 0, moment1 / weight1.clamp_min(1), torch.zeros_like(moment1))
    between = weight0 * mean0**2 + weight1 * mean1**2
    split = between[:, :-1].argmax(1)  # ITK tries splits 0 .. N - 2, the first maximum wins
    return edges.gather(1, split[:, None] + 1)[:, 0]


def _quantile_bins(counts: torch.Tensor, edges: torch.Tensor, p: float) -> torch.Tensor:
    """``(B,)`` bin of the ``p`` quantile interpolated within its bin (ITK's ``Histogram::Quantile``)."""
    total = counts.sum(1, keepdim=True)
    bins = counts.shape[1]
    if p < 0.5:
        level = counts.cumsum(1) / total
        n = (level < p).sum(1, keepdim=True).clamp_max(bins - 1)  # first bin reaching p
        before = torch.where(n > 0, level.gather(1, (n - 1).clamp_min(0)), torch.zeros_like(n, dtype=level.dtype))
        low, high = edges.gather(1, n), edges.gather(1, n + 1)
        value = low + (p - before) / (counts.gather(1, n) / total) * (high - low)
    else:
        level = 1.0 - counts.flip(1).cumsum(1) / total  # after adding bins N-1, N-2, ... from the top
        m = (level > p).sum(1, keepdim=True).clamp_max(bins - 1)
        n = bins - 1 - m
        before = torch.where(m > 0, level.gather(1, (m - 1).clamp_min(0)), torch.ones_like(m, dtype=level.dtype))
        low, high = edges.gather(1, n), edges.gather(1, n + 1)
        value = high - (before - p) / (counts.gather(1, n) / total) * (high - low)
    return _bin_of(value, edges)[:, 0]


def triangle_threshold(counts: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Triangle threshold as ITK computes it; ``(B, N)``, ``(B, N + 1)`` -> ``(B,)``.

    The line runs from the peak ``(peak, count)`` to ``(q, 0)``, ``q`` the bin of the 1 % quantile when it lies
    farther from the peak than the 99 % quantile's bin, else that of the 99 % quantile; over the bins from ``q``
    up to the peak (or from the peak up to ``q``) the first one farthest below the line (line in float32, as
    ITK) is found, and the threshold is the centre of the bin after it.
    """
    counts = counts.double()
    bins = counts.shape[1]
    levels = torch.arange(bins, device=counts.device)
    peak = counts.argmax(1, keepdim=True)
    height = counts.gather(1, peak)
    one = _quantile_bins(counts, edges, 0.01)[:, None]
    ninety_nine = _quantile_bins(counts, edges, 0.99)[:, None]
    left = (peak - one).abs() > (peak - ninety_nine).abs()
    start = torch.where(left, one, peak)
    stop = torch.where(left, peak, ninety_nine)
    slope = torch.where(left, height / (peak - one).clamp_min(1), -height / (ninety_nine - peak).clamp_min(1))
    line = torch.where(left, slope * (levels - one), slope * (levels - peak) + height).float().double()
    gap = torch.where((levels >= start) & (levels < stop), line - counts, torch.full_like(counts, -float("inf")))
    split = torch.where(stop > start, gap.argmax(1, keepdim=True), start)
    return _centres(edges).gather(1, (split + 1).clamp_max(bins - 1))[:, 0]


def _entropy_terms(membership: torch.Tensor) -> torch.Tensor:
    """Shannon's function ``-mu ln mu - (1 - mu) ln(1 - mu)``, 0 at ``mu = 1``."""
    inner = membership.clamp(max=1 - 1e-300)
    return torch.where(membership < 1, -inner * inner.log() - (1 - inner) * torch.log1p(-inner), 0.0)


def huang_threshold(counts: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Huang's fuzzy-entropy threshold as ITK computes it; ``(B, N)``, ``(B, N + 1)`` -> ``(B,)``.

    For a split ``t`` between the first and last non-empty bins, each class's mean grey value (from bin centres;
    ITK leaves bin 0 out of the sum, kept here) is rounded half up to an integer and looked up in the histogram,
    bin ``m``; a bin ``i`` of the class adds ``count_i * S(1 / (1 + |i - m| / (last - first)))``, ``S`` Shannon's
    function. A split whose lower mean falls outside the histogram is skipped; the first minimum wins.
    """
    counts = counts.double()
    bins = counts.shape[1]
    levels = torch.arange(bins, device=counts.device)
    occupied = counts > 0
    first = torch.where(occupied, levels, bins).amin(1, keepdim=True)
    last = torch.where(occupied, levels, -1).amax(1, keepdim=True)
    weighted = counts * _centres(edges)
    weighted[:, 0] = 0.0  # ITK starts its running sum of centre x count at bin 1
    size, moment = counts.cumsum(1), weighted.cumsum(1)
    size_last, moment_last = size.gather(1, last), moment.gather(1, last)
    mean0 = torch.floor(moment / size.clamp_min(1e-300) + 0.5)
    mean1 = torch.floor((moment_last - moment) / (size_last - size).clamp_min(1e-300) + 0.5)
    found = (mean0 >= edges[:, :1]) & ((mean0 < edges[:, -1:]) | torch.isclose(mean0, edges[:, -1:]))
    bin0, bin1 = _bin_of(mean0, edges), _bin_of(mean1, edges)  # (B, T)
    # (B, T, N): membership of bin i when the split is t
    below = levels[None, None, :] <= levels[None, :, None]
    centre = torch.where(below, bin0[:, :, None], bin1[:, :, None])
    scale = (last - first).clamp_min(1).double()[:, :, None]
    membership = 1.0 / (1.0 + (levels[None, None, :] - centre).abs() / scale)
    in_range = (levels >= first) & (levels <= last)
    total = (_entropy_terms(membership) * (counts * in_range)[:, None, :]).sum(2)
    valid = found & (levels >= first) & (levels < last)
    split = torch.where(valid, total, torch.full_like(total, float("inf"))).argmin(1, keepdim=True)
    split = torch.where(valid.any(1, keepdim=True), split, torch.zeros_like(split))
    return _centres(edges).gather(1, split)[:, 0]


def max_entropy_threshold(counts: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Kapur's maximum-entropy threshold as ITK computes it; ``(B, N)``, ``(B, N + 1)`` -> ``(B,)``.

    ``H0(t) + H1(t)``, ``H0 = -sum_{i <= t} p_i / P(t) ln(p_i / P(t))`` and ``H1`` likewise over ``i > t`` with
    ``1 - P(t)``, for ``t`` between the first bin with ``P > eps`` and the last with ``1 - P > eps``; scanning up,
    a split replaces the best one only when its entropy is larger by more than 1e-5.
    """
    counts = counts.double()
    bins = counts.shape[1]
    levels = torch.arange(bins, device=counts.device)
    p = counts / counts.sum(1, keepdim=True)
    mass0 = p.cumsum(1)
    mass1 = 1.0 - mass0
    eps = torch.finfo(torch.float64).eps
    first = torch.where(mass0.abs() >= eps, levels, bins).amin(1, keepdim=True).clamp_max(bins - 1)
    last = torch.where((mass1.abs() >= eps) & (levels >= first), levels, -1).amax(1, keepdim=True)
    last = torch.where(last < 0, bins - 1, last)
    below = levels[None, None, :] <= levels[None, :, None]  # (1, T, N)
    mass = torch.where(below, mass0[:, :, None], mass1[:, :, None])
    ratio = p[:, None, :] / mass
    terms = torch.where(p[:, None, :] > 0, -ratio * ratio.log(), torch.zeros_like(ratio))
    total = terms.sum(2)
    best = torch.full_like(total[:, 0], -torch.finfo(torch.float64).max)
    split = first[:, 0].clone()
    for t in range(bins):
        better = (levels[t] >= first[:, 0]) & (levels[t] <= last[:, 0]) & (best < total[:, t] - 1e-5)
        best = torch.where(better, total[:, t], best)
        split = torch.where(better, levels[t], split)
    return _centres(edges).gather(1, split[:, None])[:, 0]


#: method name -> threshold of ``(counts, edges)``.
THRESHOLD_METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "otsu": otsu_threshold,
    "triangle": triangle_threshold,
    "huang": huang_threshold,
    "max_entropy": max_entropy_threshold,
}


def threshold_images(
    images: torch.Tensor,
    method: str,
    bins: int | None = None,
    foreground: str = "dark",
    value_range: Sequence[float] | None = None,
) -> torch.Tensor:
    """Binary mask of each image of a batch by a global automatic threshold, as SimpleITK's filter gives it.

    Args:
        images: ``(B, C, H, W)`` grey images (C = 1), any real dtype.
        method: one of :data:`THRESHOLD_METHODS`.
        bins: histogram bins; None for SimpleITK's default of the method (:data:`ITK_DEFAULT_BINS`).
        foreground: ``"dark"``: pixels at or below the threshold, as SimpleITK's filters mark them (inside
            value); ``"bright"``: the others.
        value_range: fixed histogram range (``(-0.5, 255.5)`` reproduces SimpleITK on 8-bit images), or None for
            each image's own range (SimpleITK on other pixel types).

    Returns:
        ``(B, C, H, W)`` bool mask on the images' device.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"method: expected one of {sorted(THRESHOLD_METHODS)}, got {method!r}.")
    if foreground not in ("dark", "bright"):
        raise ValueError(f"foreground: expected 'dark' or 'bright', got {foreground!r}.")
    counts, edges = image_histograms(images, ITK_DEFAULT_BINS[method] if bins is None else bins, value_range)
    value = THRESHOLD_METHODS[method](counts, edges).view(-1, *([1] * (images.ndim - 1)))
    # ITK casts the threshold to the pixel type before comparing
    inside = images <= (value.to(images.dtype) if images.is_floating_point() else value.trunc())
    return inside if foreground == "dark" else ~inside
