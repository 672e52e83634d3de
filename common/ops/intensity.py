"""Per-plane intensity normalisation: whitening and scaling by two percentiles.

Statistics are taken over the last two (spatial) axes, so the functions take ``(H, W)``, ``(C, H, W)`` or
``(B, C, H, W)`` tensors alike and keep their device. Integer images come back as float32.
"""

from __future__ import annotations

import torch

from .statistics import percentile

__all__ = ["as_float_image", "whiten", "scale_percentiles"]


def as_float_image(image) -> torch.Tensor:
    """(..., H, W) tensor of ``image``, float32 unless it is floating-point already."""
    image = torch.as_tensor(image)
    if image.ndim < 2:
        raise ValueError(f"image: expected (..., H, W), got shape {tuple(image.shape)}.")
    return image if image.is_floating_point() else image.to(torch.float32)


def whiten(image, epsilon: float = 1e-6) -> torch.Tensor:
    """``(x - mean) / max(std, epsilon)`` per ``(H, W)`` plane, std with Bessel's correction (torch's default).

    This is the per-image standardisation of the LMC method (``torchvision`` ``normalize`` by the image's own
    mean and standard deviation, the deviation floored at ``epsilon``); a constant plane becomes zeros.

    Args:
        image: (..., H, W) tensor.

    Returns:
        tensor of the shape of ``image``, float.
    """
    image = as_float_image(image)
    mean = image.mean(dim=(-2, -1), keepdim=True)
    std = image.std(dim=(-2, -1), keepdim=True) if image.shape[-2:].numel() > 1 else torch.zeros_like(mean)
    return (image - mean) / std.clamp_min(epsilon)


def scale_percentiles(image, lower: float, upper: float, clip: bool = False, constant: str = "shift") -> torch.Tensor:
    """``(x - p_lower) / (p_upper - p_lower)`` per ``(H, W)`` plane, optionally clipped to [0, 1].

    Args:
        image: (..., H, W) tensor.
        lower, upper: percentiles (0 to 100, ``lower < upper``).
        clip: clip the result to [0, 1].
        constant: what a plane whose two percentiles coincide (at least ``upper - lower`` % of its pixels
            share one value) becomes, where the division is undefined: ``"shift"`` gives ``x - p_lower``
            (zero on the common value), ``"keep"`` gives the plane unchanged, as the Light My Cells
            evaluator does.

    Returns:
        tensor of the shape of ``image``, float.
    """
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(f"lower, upper: expected 0 <= lower < upper <= 100, got {lower}, {upper}.")
    if constant not in ("shift", "keep"):
        raise ValueError(f"constant: expected 'shift' or 'keep', got {constant!r}.")
    image = as_float_image(image)
    flat = image.flatten(-2)
    low, high = percentile(flat, lower)[..., None, None], percentile(flat, upper)[..., None, None]
    span = high - low
    degenerate = span == 0
    scaled = (image - low) / torch.where(degenerate, torch.ones_like(span), span)
    if constant == "keep":
        scaled = torch.where(degenerate, image, scaled)
    return scaled.clamp(0.0, 1.0) if clip else scaled
