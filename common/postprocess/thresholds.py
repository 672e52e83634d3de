"""Global automatic thresholds of grey images from their histograms, batched, in torch.

Each method takes ``(B, N)`` histogram counts and returns ``(B,)`` bin indices ``k``: class 0 is bins ``0..k``,
class 1 bins ``k + 1..N - 1``. :func:`image_histograms` bins each image of a batch over its own value range and
:func:`threshold_images` puts the two together. The histogram algorithms follow their published definitions,
as ImageJ's ``AutoThresholder`` and ITK's histogram threshold calculators (SimpleITK's ``OtsuThreshold``,
``TriangleThreshold``, ``HuangThreshold``, ``MaximumEntropyThreshold``) implement them:

* ``otsu``: the split maximising the between-class variance (Otsu 1979);
* ``triangle``: the bin farthest below the line from the histogram's peak to its far end (Zack et al. 1977);
* ``huang``: the split minimising the fuzzy (Shannon) entropy of each pixel's membership of its class mean,
  with membership ``1 / (1 + |g - mean| / (last - first))`` (Huang and Wang 1995);
* ``max_entropy``: the split maximising the sum of the two classes' entropies (Kapur, Sahoo and Wong 1985).

Ties go to the lowest bin. Everything stays on the histogram's device; no host round trip.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = [
    "THRESHOLD_METHODS",
    "image_histograms",
    "otsu_threshold",
    "triangle_threshold",
    "huang_threshold",
    "max_entropy_threshold",
    "threshold_images",
]


def image_histograms(images: torch.Tensor, bins: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram of each image over its own range ``[min, max]``.

    Args:
        images: ``(B, C, H, W)`` (or any ``(B, ...)``) real tensor; each batch item is one image.
        bins: number of equal-width bins.

    Returns:
        ``(B, N)`` float counts and the ``(B, ...)`` int64 bin index of every pixel (``floor`` of the position in
        the range, the maximum in the last bin; a constant image has every pixel in bin 0).
    """
    if bins < 2:
        raise ValueError(f"bins: expected at least 2, got {bins}.")
    flat = images.reshape(images.shape[0], -1).float()
    low, high = flat.amin(dim=1, keepdim=True), flat.amax(dim=1, keepdim=True)
    scale = bins / (high - low).clamp_min(torch.finfo(flat.dtype).tiny)
    index = ((flat - low) * scale).long().clamp_(0, bins - 1)
    counts = torch.zeros(flat.shape[0], bins, device=flat.device).scatter_add_(1, index, torch.ones_like(flat))
    return counts, index.reshape(images.shape)


def _first_minimum(scores: torch.Tensor) -> torch.Tensor:
    """``(B,)`` index of the first minimum along the last axis of ``(B, N)`` scores (NaN never wins)."""
    return torch.nan_to_num(scores, nan=float("inf")).argmin(dim=1)


def otsu_threshold(counts: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold: maximal between-class variance ``w0 w1 (mu0 - mu1)^2``; ``(B, N)`` -> ``(B,)``."""
    counts = counts.double()
    levels = torch.arange(counts.shape[1], device=counts.device, dtype=counts.dtype)
    weight0 = counts.cumsum(1)
    weight1 = counts.sum(1, keepdim=True) - weight0
    moment0 = (counts * levels).cumsum(1)
    moment1 = (counts * levels).sum(1, keepdim=True) - moment0
    between = weight0 * weight1 * (moment0 / weight0 - moment1 / weight1) ** 2
    between = torch.where((weight0 > 0) & (weight1 > 0), between, torch.full_like(between, -1.0))
    return _first_minimum(-between)


def triangle_threshold(counts: torch.Tensor) -> torch.Tensor:
    """Triangle threshold; ``(B, N)`` -> ``(B,)``.

    The histogram is mirrored if needed so that its longer side (from the peak to the farther end of the
    non-empty range) lies left of the peak; the line joins that end ``(low, 0)`` to the peak, and the
    threshold is the bin left of the peak lying farthest below it (mirrored back), as scikit-image's
    ``threshold_triangle`` computes it.
    """
    counts = counts.double()
    bins = counts.shape[1]
    levels = torch.arange(bins, device=counts.device)
    occupied = counts > 0
    first = torch.where(occupied, levels, bins).amin(1)
    last = torch.where(occupied, levels, -1).amax(1)
    peak = counts.argmax(1)
    flip = (peak - first) < (last - peak)
    mirrored = torch.where(flip[:, None], counts.flip(1), counts)
    low = torch.where(flip, bins - 1 - last, first)[:, None]
    top = torch.where(flip, bins - 1 - peak, peak)[:, None]
    height = mirrored.gather(1, top)
    # proportional to the distance below the line from (low, 0) to (top, height)
    below_line = height * (levels - low) - (top - low) * mirrored
    candidate = (levels >= low) & (levels < top)
    level = _first_minimum(torch.where(candidate, -below_line, torch.full_like(below_line, float("inf"))))
    level = torch.where(candidate.any(1), level, top[:, 0])  # one occupied bin: everything in class 0
    return torch.where(flip, bins - 1 - level, level)


def huang_threshold(counts: torch.Tensor) -> torch.Tensor:
    """Huang's fuzzy-entropy threshold; ``(B, N)`` -> ``(B,)``.

    For a split ``t`` each bin ``g`` of class 0 (``g <= t``) has membership ``1 / (1 + C |g - mu0(t)|)`` and each
    bin of class 1 ``1 / (1 + C |g - mu1(t)|)``, ``C = 1 / (last - first)`` over the non-empty range; the threshold
    minimises the count-weighted Shannon entropy of the memberships. Only splits within the non-empty range
    count, as in ImageJ.
    """
    counts = counts.double()
    bins = counts.shape[1]
    levels = torch.arange(bins, device=counts.device, dtype=counts.dtype)
    occupied = counts > 0
    first = torch.where(occupied, levels, float(bins)).amin(1, keepdim=True)
    last = torch.where(occupied, levels, -1.0).amax(1, keepdim=True)
    scale = 1.0 / (last - first).clamp_min(1.0)
    weight0, moment0 = counts.cumsum(1), (counts * levels).cumsum(1)
    weight1 = counts.sum(1, keepdim=True) - weight0
    moment1 = (counts * levels).sum(1, keepdim=True) - moment0
    mean0 = moment0 / weight0.clamp_min(1e-12)
    mean1 = moment1 / weight1.clamp_min(1e-12)
    # (B, T, N): membership of bin g given split t
    below = levels[None, None, :] <= levels[None, :, None]
    centre = torch.where(below, mean0[:, :, None], mean1[:, :, None])
    membership = 1.0 / (1.0 + scale[:, :, None] * (levels[None, None, :] - centre).abs())
    clamped = membership.clamp(1e-12, 1 - 1e-12)
    entropy = -clamped * clamped.log() - (1 - clamped) * (1 - clamped).log()
    entropy = torch.where((membership < 1e-6) | (membership > 0.999999), torch.zeros_like(entropy), entropy)
    total = (entropy * counts[:, None, :]).sum(2)
    valid = (levels[None] >= first) & (levels[None] <= last)
    return _first_minimum(torch.where(valid, total, torch.full_like(total, float("inf"))))


def max_entropy_threshold(counts: torch.Tensor) -> torch.Tensor:
    """Kapur's maximum-entropy threshold; ``(B, N)`` -> ``(B,)``.

    With ``p`` the normalised histogram and ``P0(t) = sum_{g <= t} p_g``, maximises
    ``H0 + H1 = -sum_{g <= t} p_g / P0 ln(p_g / P0) - sum_{g > t} p_g / P1 ln(p_g / P1)`` over splits that leave
    both classes non-empty.
    """
    counts = counts.double()
    p = counts / counts.sum(1, keepdim=True).clamp_min(1.0)
    p_log_p = torch.where(p > 0, p * p.clamp_min(1e-300).log(), torch.zeros_like(p))
    mass0 = p.cumsum(1)
    mass1 = 1.0 - mass0
    plogp0 = p_log_p.cumsum(1)
    plogp1 = p_log_p.sum(1, keepdim=True) - plogp0
    # -sum (p/P) ln(p/P) = ln P - sum(p ln p) / P
    entropy0 = mass0.clamp_min(1e-300).log() - plogp0 / mass0.clamp_min(1e-300)
    entropy1 = mass1.clamp_min(1e-300).log() - plogp1 / mass1.clamp_min(1e-300)
    total = entropy0 + entropy1
    both = (mass0 > 1e-12) & (mass1 > 1e-12)
    return _first_minimum(torch.where(both, -total, torch.full_like(total, float("inf"))))


#: method name -> histogram threshold function.
THRESHOLD_METHODS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "otsu": otsu_threshold,
    "triangle": triangle_threshold,
    "huang": huang_threshold,
    "max_entropy": max_entropy_threshold,
}


def threshold_images(images: torch.Tensor, method: str, bins: int = 256, foreground: str = "dark") -> torch.Tensor:
    """Binary mask of each image of a batch by a global automatic threshold.

    Args:
        images: ``(B, C, H, W)`` grey images (C = 1), any real dtype.
        method: one of :data:`THRESHOLD_METHODS`.
        bins: histogram bins over each image's own range.
        foreground: ``"dark"``: class 0 (bins up to the threshold) is foreground, as SimpleITK's threshold
            filters mark it by default (inside value 1); ``"bright"``: class 1 is.

    Returns:
        ``(B, C, H, W)`` bool mask on the images' device.
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"method: expected one of {sorted(THRESHOLD_METHODS)}, got {method!r}.")
    if foreground not in ("dark", "bright"):
        raise ValueError(f"foreground: expected 'dark' or 'bright', got {foreground!r}.")
    counts, index = image_histograms(images, bins)
    split = THRESHOLD_METHODS[method](counts).view(-1, *([1] * (images.ndim - 1)))
    return index <= split if foreground == "dark" else index > split
