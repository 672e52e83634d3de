"""Binary dilation and erosion by a disk, batched, in torch (a convolution with the disk, on any device).

The structuring element of radius ``r`` is ITK's ball (SimpleITK's default kernel, ``sitkBall``): the pixels
``(dy, dx)`` with ``dy^2 + dx^2 <= (r + 1/2)^2`` (293 pixels at ``r = 9``). The image
border follows ITK's binary morphology filters: outside the image counts as background for dilation and as
foreground for erosion (``BoundaryToForeground``), so an object touching the border is not eaten from it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["disk", "binary_dilation", "binary_erosion"]


def disk(radius: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(2r + 1, 2r + 1)`` float disk of radius ``radius``, ITK's ball (1 inside, 0 outside)."""
    if radius < 0 or int(radius) != radius:
        raise ValueError(f"radius: expected a non-negative integer, got {radius!r}.")
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= (radius + 0.5) ** 2).float()


def _hits(mask: torch.Tensor, radius: int, outside: float) -> torch.Tensor:
    """Number of foreground pixels under the disk at every pixel of the ``(B, C, H, W)`` mask."""
    if mask.ndim != 4:
        raise ValueError(f"mask: expected a (B, C, H, W) tensor, got shape {tuple(mask.shape)}.")
    batch, channels, height, width = mask.shape
    kernel = disk(radius, mask.device)[None, None]
    padded = F.pad(mask.reshape(batch * channels, 1, height, width).float(), [radius] * 4, value=outside)
    return F.conv2d(padded, kernel).reshape(mask.shape)


def binary_dilation(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """``(B, C, H, W)`` bool: pixels with a foreground pixel of ``mask`` within the disk of ``radius``."""
    if radius == 0:
        return mask.bool()
    return _hits(mask, radius, outside=0.0) > 0.5


def binary_erosion(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """``(B, C, H, W)`` bool: pixels whose whole disk of ``radius`` is foreground in ``mask`` (outside counts)."""
    if radius == 0:
        return mask.bool()
    return _hits(mask, radius, outside=1.0) > disk(radius).sum() - 0.5
