"""Order statistics by selection (``torch.kthvalue``): linear time, any size (``torch.quantile`` stops at 2**24
elements), on the input's device."""

from __future__ import annotations

import math

import torch

__all__ = ["percentile", "median"]


def percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    """``q``-th percentile along the last axis, interpolated linearly exactly as ``np.percentile`` does.

    Args:
        values: (..., N) floating-point tensor, N >= 1.
        q: percentile in [0, 100].

    Returns:
        (...) tensor of the input's dtype and device.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q: expected a percentile in [0, 100], got {q}.")
    count = values.shape[-1]
    position = q / 100.0 * (count - 1)
    below = math.floor(position)
    above = min(below + 1, count - 1)
    # k-th smallest values, k 1-based
    low = values.kthvalue(below + 1, dim=-1).values
    high = values.kthvalue(above + 1, dim=-1).values if above != below else low
    return torch.lerp(low, high, position - below)  # NumPy's interpolation, both sides of weight 0.5


def median(values: torch.Tensor) -> torch.Tensor:
    """Median of all elements as NumPy takes it (the mean of the two middle ones for an even count).

    Args:
        values: tensor of any shape with at least one element.

    Returns:
        0-d float64 tensor on the input's device.
    """
    flat = values.reshape(-1)
    count = flat.numel()
    if count == 0:
        raise ValueError("values: the median of an empty tensor is undefined.")
    low = flat.kthvalue((count + 1) // 2).values
    high = flat.kthvalue(count // 2 + 1).values
    return (low.double() + high.double()) / 2
