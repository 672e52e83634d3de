"""Per-plane intensity normalisation: whitening and scaling by two percentiles.

Statistics are taken over the last two (spatial) axes, so the functions take ``(H, W)``, ``(C, H, W)`` or
``(B, C, H, W)`` tensors alike and keep their device. Integer images come back as float32.
"""

from __future__ import annotations

import torch

from .statistics import percentile

__all__ = ["as_float_image", "plane_statistics", "whiten", "scale_percentiles"]


def as_float_image(image) -> torch.Tensor:
    """(..., H, W) tensor of ``image``, float32 unless it is floating-point already."""
    image = torch.as_tensor(image)
    if image.ndim < 2:
        raise ValueError(f"image: expected (..., H, W), got shape {tuple(image.shape)}.")
    return image if image.is_floating_point() else image.to(torch.float32)


def plane_statistics(statistics, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Precomputed statistics, two per plane, as two ``(..., 1, 1)`` tensors of ``image``'s dtype and device.

    Args:
        statistics: (..., 2) array-like (e.g. (C, 2) for a (C, H, W) or (B, C, H, W) image, or (2,) for all
            planes alike), broadcastable against ``image.shape[:-2]``.
        image: (..., H, W) floating-point tensor.

    Raises:
        ValueError: the statistics do not have that shape (naming ``statistics``).
    """
    values = torch.as_tensor(statistics, dtype=image.dtype, device=image.device)
    try:
        if values.ndim < 1 or values.shape[-1] != 2 or values.ndim - 1 > image.ndim - 2:
            raise ValueError
        torch.broadcast_shapes(values.shape[:-1], image.shape[:-2])
    except (ValueError, RuntimeError):
        raise ValueError(
            f"statistics: expected (..., 2) values broadcastable to the image's planes {tuple(image.shape[:-2])}, "
            f"got shape {tuple(values.shape)}."
        ) from None
    return values[..., 0, None, None], values[..., 1, None, None]


def whiten(image, epsilon: float = 1e-6, statistics=None) -> torch.Tensor:
    """``(x - mean) / max(std, epsilon)`` per ``(H, W)`` plane, std with Bessel's correction (torch's default).

    This is the per-image standardisation of the LMC method (``torchvision`` ``normalize`` by the image's own
    mean and standard deviation, the deviation floored at ``epsilon``); a constant plane becomes zeros. Mean and
    std are accumulated in float64 (except on MPS) and rounded to the image's dtype, so that statistics computed
    block by block (:func:`common.slides.mean_std`) give the same result.

    Args:
        image: (..., H, W) tensor.
        statistics: None, or precomputed (mean, std) per plane, (..., 2) (see :func:`plane_statistics`), used
            instead of the image's own.

    Returns:
        tensor of the shape of ``image``, float.
    """
    image = as_float_image(image)
    if statistics is not None:
        mean, std = plane_statistics(statistics, image)
        return (image - mean) / std.clamp_min(epsilon)
    wide = image if image.device.type == "mps" else image.to(torch.float64)
    mean = wide.mean(dim=(-2, -1), keepdim=True)
    std = wide.std(dim=(-2, -1), keepdim=True) if image.shape[-2:].numel() > 1 else torch.zeros_like(mean)
    return (image - mean.to(image.dtype)) / std.to(image.dtype).clamp_min(epsilon)


def scale_percentiles(
    image, lower: float, upper: float, clip: bool = False, constant: str = "shift", statistics=None
) -> torch.Tensor:
    """``(x - p_lower) / (p_upper - p_lower)`` per ``(H, W)`` plane, optionally clipped to [0, 1].

    Args:
        image: (..., H, W) tensor.
        lower, upper: percentiles (0 to 100, ``lower < upper``).
        clip: clip the result to [0, 1].
        constant: what a plane whose two percentiles coincide (at least ``upper - lower`` % of its pixels
            share one value) becomes, where the division is undefined: ``"shift"`` gives ``x - p_lower``
            (zero on the common value), ``"keep"`` gives the plane unchanged, as the Light My Cells
            evaluator does.
        statistics: None, or the precomputed (p_lower, p_upper) per plane, (..., 2) (see
            :func:`plane_statistics`; :func:`common.slides.percentiles` for whole slides), used instead of the
            image's own.

    Returns:
        tensor of the shape of ``image``, float.
    """
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(f"lower, upper: expected 0 <= lower < upper <= 100, got {lower}, {upper}.")
    if constant not in ("shift", "keep"):
        raise ValueError(f"constant: expected 'shift' or 'keep', got {constant!r}.")
    image = as_float_image(image)
    if statistics is None:
        flat = image.flatten(-2)
        low, high = percentile(flat, lower)[..., None, None], percentile(flat, upper)[..., None, None]
    else:
        low, high = plane_statistics(statistics, image)
    span = high - low
    degenerate = span == 0
    scaled = (image - low) / torch.where(degenerate, torch.ones_like(span), span)
    if constant == "keep":
        scaled = torch.where(degenerate, image, scaled)
    return scaled.clamp(0.0, 1.0) if clip else scaled
