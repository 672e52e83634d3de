"""Flow fields from instance labels: the gradient of heat diffused from each cell's centre (cellpose).

For each cell: the centre is the cell pixel nearest its rounded centroid (so it lies inside non-convex
cells); for ``n_iter = 2 (h + w + 2)`` iterations (h, w: the bounding box), one unit of heat is added at the
centre and every cell pixel takes the sum of its 3x3 neighbourhood divided by 9, pixels outside the cell
counting as zero (diffusion confined to the cell, heat lost at its edge). The flow is the central-difference
gradient (dy, dx) of that field (or of ``log(1 + T)``, the variant of cellpose 2 and MEDIAR), scaled to unit
length, zero on background.

Cellpose diffuses all cells of an image together for the iterations its largest cell needs. Here each cell
is cropped to its bounding box, crops of equal (rounded) size are batched, and each cell stops after its
own iteration count: the work is about ``9 * n_iter`` operations per cell pixel, linear in the image for a
given cell size. Two deliberate differences from cellpose: the iteration count is per cell rather than the
image maximum, and the gradient at a pixel touching another cell sees that neighbour as zero heat, not the
neighbour's own heat (cellpose diffuses all cells in one array, so its gradients at touching edges mix in the
neighbour's field).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ._cells import find_cells, gather_crops, plan_crops, scatter_crops
from ._checks import as_labels

__all__ = ["labels_to_flows", "crop_centres", "diffuse_heat", "heat_to_flows"]

#: Crop pixels diffused together: small enough that the working set stays in a CPU core's cache.
CROP_BATCH_PIXELS = 1 << 17


def crop_centres(mask: torch.Tensor) -> torch.Tensor:
    """Centre of each cell crop: the cell pixel nearest the rounded centroid, first in raster order on ties.

    Args:
        mask: (n, h, w) bool cell masks, each with at least one pixel.

    Returns:
        (n,) int64 flat indices into (h, w).
    """
    n, h, w = mask.shape
    y = torch.arange(h, device=mask.device, dtype=torch.float64)[:, None]
    x = torch.arange(w, device=mask.device, dtype=torch.float64)[None, :]
    m = mask.to(torch.float64)
    area = m.sum((1, 2))
    cy = torch.round((m * y).sum((1, 2)) / area)[:, None, None]
    cx = torch.round((m * x).sum((1, 2)) / area)[:, None, None]
    distance = (y - cy) ** 2 + (x - cx) ** 2
    return distance.masked_fill(~mask, float("inf")).view(n, -1).argmin(1)


def diffuse_heat(mask: torch.Tensor, centres: torch.Tensor, n_iter: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    """Heat diffused from each crop's centre, confined to its cell.

    Args:
        mask: (n, h, w) bool cell masks.
        centres: (n,) flat indices into (h, w) of the heat sources.
        n_iter: (n,) host array of iteration counts, in non-increasing order (cells that stop early last).
        dtype: floating dtype of the field.

    Returns:
        (n, h + 2, w + 2) heat, zero outside the cells and on the one-pixel border.
    """
    n, h, w = mask.shape
    n_iter = np.asarray(n_iter)
    if np.any(np.diff(n_iter) > 0):
        raise ValueError("n_iter: expected a non-increasing sequence (cells sorted by iteration count).")
    heat = torch.zeros((n, h + 2, w + 2), dtype=dtype, device=mask.device)
    rows = torch.empty((n, h + 2, w), dtype=dtype, device=mask.device)
    weight = mask.to(dtype) / 9
    # T <- weight * box3x3(T + source) = weight * box3x3(T) + weight * box3x3(source): the second term is fixed
    source = torch.zeros((n, h + 2, w + 2), dtype=dtype, device=mask.device)
    source.view(n, -1)[torch.arange(n, device=mask.device), (centres // w + 1) * (w + 2) + centres % w + 1] = 1
    source = _box_sum(source, torch.empty_like(rows)) * weight
    # the cells still running form a prefix (n_iter is non-increasing): run each prefix on views, no copies
    done = 0
    for k, stop in _active_prefixes(n_iter):
        t, r, inner, add, wk = heat[:k], rows[:k], heat[:k, 1:-1, 1:-1], source[:k], weight[:k]
        left, centre, right, up, middle, down = t[:, :, :-2], t[:, :, 1:-1], t[:, :, 2:], r[:, :-2], r[:, 1:-1], r[:, 2:]
        for _ in range(stop - done):
            torch.add(left, centre, out=r).add_(right)
            torch.add(up, middle, out=inner).add_(down)
            torch.addcmul(add, inner, wk, out=inner)
        done = stop
    return heat


def _box_sum(padded: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(n, h, w) sums over the 3x3 neighbourhoods of a zero-padded (n, h + 2, w + 2) tensor."""
    torch.add(padded[:, :, :-2], padded[:, :, 1:-1], out=rows)
    rows += padded[:, :, 2:]
    return rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]


def _active_prefixes(n_iter: np.ndarray):
    """(k, stop) pairs: the first k cells run until iteration ``stop``, for non-increasing ``n_iter``."""
    for stop in np.unique(n_iter[n_iter > 0]).tolist():
        yield int(np.count_nonzero(n_iter >= stop)), stop


def heat_to_flows(heat: torch.Tensor, mask: torch.Tensor, log_heat: bool = False) -> torch.Tensor:
    """Unit central-difference gradient of padded heat.

    Args:
        heat: (n, h + 2, w + 2) field, zero outside the cells.
        mask: (n, h, w) bool cell masks.
        log_heat: take the gradient of ``log(1 + heat)``.

    Returns:
        (n, 2, h, w) float flows (dy, dx), unit length on cell pixels with a non-zero gradient, else zero.
    """
    if log_heat:
        heat = torch.log1p(heat)
    dy = heat[:, 2:, 1:-1] - heat[:, :-2, 1:-1]
    dx = heat[:, 1:-1, 2:] - heat[:, 1:-1, :-2]
    norm = torch.hypot(dy, dx)  # hypot does not underflow for tiny gradients far from the centre
    keep = mask & (norm > 0)
    norm = torch.where(keep, norm, torch.ones_like(norm))
    return torch.stack((dy, dx), 1) / norm[:, None] * keep[:, None]  # divide: 1 / norm may overflow


def _underflow(heat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(n,) True for cells with a pixel at exactly zero heat (unreached, or below the dtype's range)."""
    return ((heat[:, 1:-1, 1:-1] == 0) & mask).flatten(1).any(1)


def labels_to_flows(labels, log_heat: bool = False, niter: Optional[int] = None) -> torch.Tensor:
    """Cellpose flow fields of instance labels.

    Args:
        labels: (H, W) or (B, H, W) integer instance labels (torch or NumPy; any non-negative ids, 0 is
            background).
        log_heat: gradient of ``log(1 + T)`` instead of ``T`` (cellpose 2 and MEDIAR; cellpose 3/4 use ``T``).
        niter: diffusion iterations for every cell; default ``2 (h + w + 2)`` of each cell's bounding box.

    Returns:
        (B, 2, H, W) float32 unit flows (dy, dx) on the labels' device, zero on background. Networks of
        cellpose and MEDIAR are trained on ``CELLPOSE_FLOW_SCALE`` (5) times these.

    The field is computed in float32; cells where float32 leaves a pixel at zero heat (very long thin cells
    whose far end is more than ~1e-38 below the centre) are recomputed in float64.
    """
    labels = as_labels(labels)
    flows = torch.zeros((labels.shape[0], 2) + tuple(labels.shape[1:]), dtype=torch.float32, device=labels.device)
    cells = find_cells(labels)
    if len(cells) == 0:
        return flows
    flagged = _add_cell_flows(flows, labels, cells, log_heat, niter, torch.float32)
    if flagged.numel():
        redo = cells.select(flagged)
        # remove the float32 result of these cells exactly (x + -x == 0), then add the float64 one
        _add_cell_flows(flows, labels, redo, log_heat, niter, torch.float64, subtract_existing=True)
    return flows


def _add_cell_flows(flows, labels, cells, log_heat, niter, dtype, subtract_existing=False) -> torch.Tensor:
    """Diffuse and add the flows of ``cells`` into ``flows``; return the indices of cells that underflowed."""
    sizes = (cells.height + cells.width + 2).cpu().numpy()
    n_iter = 2 * sizes if niter is None else np.full(len(sizes), int(niter))
    flags, indices = [], []
    for batch in plan_crops(cells, CROP_BATCH_PIXELS, order=-n_iter):
        mask = gather_crops(labels, cells, batch)
        if subtract_existing:
            _subtract_existing(flows, mask, cells, batch)
        heat = diffuse_heat(mask, crop_centres(mask), n_iter[batch.host_index], dtype)
        scatter_crops(flows, heat_to_flows(heat, mask, log_heat), cells, batch)
        flags.append(_underflow(heat, mask))
        indices.append(batch.index)
    if dtype == torch.float64:
        return indices[0][:0]
    return torch.cat(indices)[torch.cat(flags)]  # one host sync, after all batches


def _subtract_existing(flows, mask, cells, batch) -> None:
    from ._cells import crop_index

    (b, y, x), _ = crop_index(cells, batch, flows.shape[-2:])
    channel = torch.arange(flows.shape[1], device=flows.device)[None, :, None, None]
    existing = flows[b[:, None], channel, y[:, None], x[:, None]] * mask[:, None]
    scatter_crops(flows, -existing, cells, batch)
