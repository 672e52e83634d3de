"""Pearson's correlation of image planes, shared by the fluorescence loss and metric."""

from __future__ import annotations

import torch

__all__ = ["pearson_correlation"]


def pearson_correlation(x, y, mask=None, epsilon: float = 0.0) -> torch.Tensor:
    """Pearson's correlation of each pair of (H, W) planes: ``sum(dx dy) / (|dx| |dy| + epsilon)``.

    Args:
        x, y: (..., H, W) tensors; computed in their dtype (float32 for integer inputs).
        mask: optional (..., H, W) bool tensor of the pixels to use (every plane needs at least one).
        epsilon: added to the denominator; 0 gives the exact correlation, NaN when a plane is constant
            (as ``scipy.stats.pearsonr``), 1e-6 the differentiable version of the LMC loss.

    Returns:
        (...) tensor.
    """
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.shape != y.shape:
        raise ValueError(f"x and y shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}.")
    dtype = torch.promote_types(x.dtype, torch.float32) if not x.is_floating_point() else x.dtype
    x, y = x.to(dtype), y.to(x.device, dtype)
    weight = torch.ones_like(x) if mask is None else mask.to(x.device, dtype)
    count = weight.sum(dim=(-2, -1), keepdim=True)
    dx = (x - (x * weight).sum(dim=(-2, -1), keepdim=True) / count) * weight
    dy = (y - (y * weight).sum(dim=(-2, -1), keepdim=True) / count) * weight
    covariance = (dx * dy).sum(dim=(-2, -1))
    norms = dx.square().sum(dim=(-2, -1)).sqrt() * dy.square().sum(dim=(-2, -1)).sqrt()
    return covariance / (norms + epsilon)
