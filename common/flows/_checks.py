"""Input checks shared by the flow functions: clear errors that name the argument."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_labels", "as_flows", "as_image"]

# dtypes whose comparisons, gathers and unique are implemented on every device
_WIDEN = {
    getattr(torch, name): wide
    for name, wide in (("uint16", torch.int32), ("uint32", torch.int64), ("uint64", torch.int64), ("bool", torch.uint8))
    if hasattr(torch, name)
}


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.as_tensor() if hasattr(x, "as_tensor") else x  # MONAI MetaTensor -> plain tensor
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}.")


def as_labels(labels, name: str = "labels") -> torch.Tensor:
    """(H, W) or (B, H, W) non-negative integer labels -> (B, H, W) tensor on the same device."""
    labels = _as_tensor(labels, name)
    if labels.ndim not in (2, 3):
        raise ValueError(f"{name}: expected (H, W) or (B, H, W) instance labels, got shape {tuple(labels.shape)}.")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{name}: expected integer instance labels, got dtype {labels.dtype}.")
    labels = labels.to(_WIDEN.get(labels.dtype, labels.dtype))
    if labels.numel() and labels.dtype != torch.uint8 and bool(labels.min() < 0):
        raise ValueError(f"{name}: instance ids must be >= 0 (0 is background), found {int(labels.min())}.")
    return labels if labels.ndim == 3 else labels[None]


def as_flows(flows, name: str = "flows") -> torch.Tensor:
    """(2, H, W) or (B, 2, H, W) flows -> (B, 2, H, W) float tensor."""
    flows = _as_tensor(flows, name)
    if flows.ndim not in (3, 4) or flows.shape[-3] != 2:
        raise ValueError(f"{name}: expected (2, H, W) or (B, 2, H, W) flows (dy, dx), got shape {tuple(flows.shape)}.")
    if not flows.is_floating_point():
        raise TypeError(f"{name}: expected floating-point flows, got dtype {flows.dtype}.")
    return flows if flows.ndim == 4 else flows[None]


def as_image(image, like: torch.Tensor, name: str) -> torch.Tensor:
    """(H, W) or (B, H, W) map matching the (B, C, H, W) tensor ``like`` -> (B, H, W) on its device."""
    image = _as_tensor(image, name).to(like.device)
    expected = (like.shape[0],) + tuple(like.shape[-2:])
    if image.ndim == 2:
        image = image[None]
    if tuple(image.shape) != expected:
        raise ValueError(f"{name}: expected shape {expected[1:]} or {expected}, got {tuple(image.shape)}.")
    return image
