"""MEDIAR's boundary exclusion of instance label images for training on public data. Backend: torch on the
labels' device; NumPy input is returned as NumPy."""

from __future__ import annotations

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from .base import ArrayMapTransform

__all__ = ["BoundaryExclusion", "BoundaryExclusiond"]

#: label written for excluded pixels with ``mode="ignore"``; :class:`common.losses.FlowCellprobLoss` skips them.
IGNORE_LABEL = -1


def _labels(labels, name: str = "labels") -> torch.Tensor:
    x = convert_to_tensor(labels, track_meta=False)
    if x.ndim != 3 or x.shape[0] != 1 or x.is_floating_point() or x.dtype == torch.bool:
        raise ValueError(f"{name}: expected (1, H, W) integer instance labels, got {tuple(x.shape)} of {x.dtype}.")
    # torch has few kernels for uint16 / uint32 / uint64: compute on int64
    return x if x.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64) else x.to(torch.int64)


def _is_unsigned(labels) -> bool:
    dtype = labels.dtype
    return dtype.kind == "u" if hasattr(dtype, "kind") else not dtype.is_signed


class BoundaryExclusion(Transform):
    """Cells lose their boundary pixels: (1, H, W) instance labels -> (1, H, W) labels.

    A cell pixel with a 4-neighbour of another id (another cell or background) is a boundary pixel; it becomes
    background (``mode="background"``, what MEDIAR's code does) or ``-1`` (``mode="ignore"``: left out of
    :class:`common.losses.FlowCellprobLoss`). Cells smaller than ``min_area`` pixels and pixels within
    ``border`` pixels of the image edge keep their ids. The image edge itself is not a boundary. Unsigned
    labels become int32 with ``mode="ignore"``.

    Args:
        min_area: cells with fewer pixels are left whole (MEDIAR: 196, "14 x 14").
        border: width of the frame along the image edge left whole (MEDIAR: 2).
        mode: ``"background"`` or ``"ignore"``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, min_area: int = 196, border: int = 2, mode: str = "background") -> None:
        if mode not in ("background", "ignore"):
            raise ValueError(f"mode: expected 'background' or 'ignore', got {mode!r}.")
        if min_area < 0 or border < 0:
            raise ValueError(f"min_area, border: expected non-negative values, got {min_area}, {border}.")
        self.min_area, self.border, self.mode = min_area, border, mode

    def __call__(self, labels: NdarrayOrTensor) -> NdarrayOrTensor:
        x = _labels(labels)[0]
        differs = torch.zeros_like(x, dtype=torch.bool)
        vertical, horizontal = x[1:] != x[:-1], x[:, 1:] != x[:, :-1]
        differs[1:] |= vertical
        differs[:-1] |= vertical
        differs[:, 1:] |= horizontal
        differs[:, :-1] |= horizontal
        _, index, counts = torch.unique(x, return_inverse=True, return_counts=True)
        large = (counts >= self.min_area)[index]
        inside = torch.zeros_like(differs)
        height, width = x.shape
        inside[self.border : height - self.border, self.border : width - self.border] = True
        excluded = differs & (x > 0) & large & inside
        if self.mode == "background":
            return convert_to_dst_type(x.masked_fill(excluded, 0)[None], labels)[0]  # the input's dtype
        out = x.to(torch.int64).masked_fill(excluded, IGNORE_LABEL)[None]
        return convert_to_dst_type(out, labels, dtype=torch.int32 if _is_unsigned(labels) else None)[0]


class BoundaryExclusiond(ArrayMapTransform):
    """Dictionary version of :class:`BoundaryExclusion`; ``output_keys`` (default ``keys``) receive the labels."""

    backend = BoundaryExclusion.backend

    def __init__(
        self,
        keys: KeysCollection,
        min_area: int = 196,
        border: int = 2,
        mode: str = "background",
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, BoundaryExclusion(min_area, border, mode), output_keys, allow_missing_keys)
