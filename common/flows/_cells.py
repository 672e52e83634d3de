"""Cells as crops: bounding boxes of all cells of a batch of label images, packed into batches of equal-size crops.

Per-cell work (heat diffusion, hole filling) then runs on small dense tensors whose size follows each cell's
bounding box, so the cost grows with the cells' boxes, not with the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Cells",
    "CropBatch",
    "find_cells",
    "plan_crops",
    "crop_index",
    "gather_crops",
    "gather_values",
    "scatter_crops",
]

#: Pixels a band of rows holds while the bounding boxes are collected; bounds the per-pixel index tensors.
BAND_PIXELS = 1 << 22
#: Ids below this are looked up in tables indexed by id (at most 2**24 entries); larger ids are sorted.
TABLE_LIMIT = 1 << 24


@dataclass
class Cells:
    """The cells of a (B, H, W) label image; every field is an (N,) tensor on the labels' device."""

    image: torch.Tensor  # int64 index of the image in the batch
    label: torch.Tensor  # the cell's id, in the labels' dtype
    top: torch.Tensor  # int64 bounding box: first row, first column, height, width
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor

    def __len__(self) -> int:
        return int(self.label.numel())

    def select(self, index: torch.Tensor) -> Cells:
        return Cells(*(getattr(self, f)[index] for f in ("image", "label", "top", "left", "height", "width")))


@dataclass
class CropBatch:
    """Cells ``index`` (n,) cropped to a common (height, width), each crop anchored at its box's top-left."""

    index: torch.Tensor  # (n,) int64 on the cells' device
    host_index: np.ndarray  # the same indices on the host, for per-cell planning (iteration counts)
    height: int
    width: int


def _cell_ids(image: torch.Tensor, rows: int) -> torch.Tensor:
    """Sorted non-zero ids of an (H, W) label image, collected band by band.

    Ids below ``TABLE_LIMIT`` are marked in a presence table (linear time); larger ids are sorted out with
    ``torch.unique``.
    """
    largest = int(image.max()) if image.numel() else 0
    if largest < TABLE_LIMIT:
        present = torch.zeros(largest + 1, dtype=torch.bool, device=image.device)
        for r in range(0, image.shape[0], rows):
            present[image[r : r + rows].reshape(-1).long()] = True
        present[0] = False
        return torch.nonzero(present)[:, 0].to(image.dtype)
    ids = torch.unique(torch.cat([torch.unique(image[r : r + rows]) for r in range(0, image.shape[0], rows)]))
    return ids[ids != 0]


def _index_of(ids: torch.Tensor):
    """Function mapping label values to their position in the sorted ``ids`` (a table lookup when small)."""
    largest = int(ids[-1]) if ids.numel() else 0
    if largest < TABLE_LIMIT:
        table = torch.zeros(largest + 1, dtype=torch.int64, device=ids.device)
        table[ids.long()] = torch.arange(ids.numel(), device=ids.device)
        return lambda values: table[values.long()]
    return lambda values: torch.searchsorted(ids, values)


def find_cells(labels: torch.Tensor, band_pixels: int = BAND_PIXELS) -> Cells:
    """Bounding boxes of the cells of (B, H, W) integer labels (any non-zero ids), computed in row bands."""
    batch, height, width = labels.shape
    rows = max(1, band_pixels // max(width, 1))
    device = labels.device
    parts = []
    for b in range(batch):
        ids = _cell_ids(labels[b], rows)
        index_of = _index_of(ids)
        n = ids.numel()
        top = torch.full((n,), height, dtype=torch.int64, device=device)
        left = torch.full((n,), width, dtype=torch.int64, device=device)
        bottom = torch.full((n,), -1, dtype=torch.int64, device=device)
        right = torch.full((n,), -1, dtype=torch.int64, device=device)
        for r in range(0, height, rows):
            band = labels[b, r : r + rows]
            y, x = torch.nonzero(band, as_tuple=True)
            cell = index_of(band[y, x])
            top.scatter_reduce_(0, cell, y + r, "amin")
            bottom.scatter_reduce_(0, cell, y + r, "amax")
            left.scatter_reduce_(0, cell, x, "amin")
            right.scatter_reduce_(0, cell, x, "amax")
        image = torch.full((n,), b, dtype=torch.int64, device=device)
        parts.append((image, ids, top, left, bottom - top + 1, right - left + 1))
    return Cells(*(torch.cat(p) for p in zip(*parts)))


def _round_up(n: np.ndarray) -> np.ndarray:
    """Round sizes up to 2**k * {1, 1.25, 1.5, 1.75}: at most 25 % padding, few distinct crop shapes."""
    step = 2 ** np.maximum(np.floor(np.log2(np.maximum(n, 1))).astype(np.int64) - 2, 0)
    return -(-n // step) * step


def plan_crops(cells: Cells, max_pixels: int, order: np.ndarray | None = None, waste: float = 0.25) -> list[CropBatch]:
    """Group cells into batches of one crop shape with at most ``max_pixels`` crop pixels (one cell at least).

    Box sizes are rounded up to 2**k * {1, 1.25, 1.5, 1.75}; consecutive size groups are merged into one
    batch while that pads the batch by at most ``waste`` more, so few cells never make many tiny batches.

    Args:
        cells: the cells to crop.
        max_pixels: pixel budget of a batch (keeps per-iteration working sets in cache).
        order: (N,) host sort key; within a batch, cells come in ascending key order.
        waste: padding allowed when merging size groups, as a fraction of the batch's rounded box areas.

    Returns:
        list of :class:`CropBatch`; every cell appears in exactly one.
    """
    h = _round_up(cells.height.cpu().numpy())  # the one host copy: the plan needs shapes on the host
    w = _round_up(cells.width.cpu().numpy())
    key = np.zeros(len(h), dtype=np.int64) if order is None else np.asarray(order)
    sequence = np.lexsort((key, w, h))
    groups: list[list[int]] = []  # [first, stop, height, width, own pixels]
    for i in range(len(sequence)):
        c = sequence[i]
        ch, cw, area = int(h[c]), int(w[c]), int(h[c] * w[c])
        if groups:
            first, _, gh, gw, own = groups[-1]
            mh, mw = max(gh, ch), max(gw, cw)
            padded = (i + 1 - first) * mh * mw
            small = padded <= max_pixels // 4  # few cells: batch overhead costs more than padding
            if padded <= max(max_pixels, mh * mw) and (small or padded <= (1 + waste) * (own + area)):
                groups[-1][1:] = [i + 1, mh, mw, own + area]
                continue
        groups.append([i, i + 1, ch, cw, area])
    for first, stop, _, _, _ in groups:
        sequence[first:stop] = sequence[first:stop][np.argsort(key[sequence[first:stop]], kind="stable")]
    device_sequence = torch.from_numpy(sequence).to(cells.label.device)
    return [CropBatch(device_sequence[a:b], sequence[a:b], gh, gw) for a, b, gh, gw, _ in groups]


def crop_index(cells: Cells, batch: CropBatch, image_shape, margin: int = 0) -> tuple:
    """Where the batch's crops, grown by ``margin`` on each side, lie in a (B, H, W) image.

    Returns:
        index tensors (b, y, x) broadcasting to (n, height + 2 margin, width + 2 margin), clamped to the
        image, and the bool mask of positions inside the image.
    """
    c = cells.select(batch.index)
    dy = torch.arange(-margin, batch.height + margin, device=c.top.device)
    dx = torch.arange(-margin, batch.width + margin, device=c.top.device)
    y, x = c.top[:, None] + dy, c.left[:, None] + dx
    in_image = ((y >= 0) & (y < image_shape[0]))[:, :, None] & ((x >= 0) & (x < image_shape[1]))[:, None, :]
    y = y.clamp(0, image_shape[0] - 1)[:, :, None]
    x = x.clamp(0, image_shape[1] - 1)[:, None, :]
    return (c.image[:, None, None], y, x), in_image


def gather_crops(labels: torch.Tensor, cells: Cells, batch: CropBatch, margin: int = 0) -> torch.Tensor:
    """(n, height + 2 margin, width + 2 margin) bool masks of the batch's cells; labels is (B, H, W).

    Boxes are tight, so a crop position outside its cell's box never holds the cell's id.
    """
    index, in_image = crop_index(cells, batch, labels.shape[-2:], margin)
    return (labels[index] == cells.label[batch.index][:, None, None]) & in_image


def gather_values(image: torch.Tensor, cells: Cells, batch: CropBatch, margin: int = 0) -> torch.Tensor:
    """(n, height + 2 margin, width + 2 margin) values of a (B, H, W) image at the batch's crops, zero
    beyond the image."""
    index, in_image = crop_index(cells, batch, image.shape[-2:], margin)
    return image[index] * in_image


def scatter_crops(out: torch.Tensor, values: torch.Tensor, cells: Cells, batch: CropBatch) -> None:
    """Add crop values, zero outside each cell, into ``out`` in place: (n, C, height, width) into
    (B, C, H, W), or (n, height, width) into (B, H, W).

    Cells do not overlap, so each pixel receives one value plus zeros: the sum is exact and order-free.
    """
    (b, y, x), _ = crop_index(cells, batch, out.shape[-2:])
    if out.ndim == 3:
        out.index_put_((b, y, x), values.to(out.dtype), accumulate=True)
        return
    channel = torch.arange(out.shape[1], device=out.device)[None, :, None, None]
    out.index_put_((b[:, None], channel, y[:, None], x[:, None]), values.to(out.dtype), accumulate=True)
