"""Flow fields from instance labels: the gradient of heat diffused from each cell's centre (cellpose).

For each cell: the centre is the cell pixel nearest its rounded centroid, or nearest its coordinate-wise
median in cellpose 2 and MEDIAR (either way inside non-convex cells). For ``n_iter`` iterations, one unit
of heat is added at the centre and every cell pixel takes the sum of its 3x3 neighbourhood divided by 9,
pixels outside the cell counting as zero (diffusion confined to the cell, heat lost at its edge). As in
cellpose, ``n_iter = 2 * max(h + w + 2)`` over the cells of the image (h, w: bounding box). The flow is the
central-difference gradient (dy, dx) of that field (or of ``log(1 + T)``, the variant of cellpose 2 and
MEDIAR), scaled to unit length, zero on background.

Cellpose diffuses all cells of an image together on the whole image. Here each cell is cropped to its
bounding box and crops of similar size are diffused together in small batches, so the work is about
``5 * n_iter`` operations per box pixel: linear in the image for a given cell size. The heat of all cells
is then gathered into one image and differentiated there. Cellpose's gradient at a pixel touching another
cell sees that cell's heat, which can turn edge flows towards the neighbour (round trips lose several % of
IoU on crowded cells); by default a neighbouring cell counts as zero heat here, ``neighbour_heat=True`` gives
cellpose's flows (equal to cellpose 4's ``masks_to_flows`` to float32 precision).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ._cells import BAND_PIXELS, Cells, crop_index, find_cells, gather_crops, gather_values, plan_crops, scatter_crops
from ._checks import as_labels

__all__ = ["labels_to_flows", "crop_centres", "diffuse_heat", "heat_to_flows"]

#: Crop pixels diffused together: small enough that the working set stays in a CPU core's cache.
CROP_BATCH_PIXELS = 1 << 17


def crop_centres(mask: torch.Tensor, centre: str = "mean") -> torch.Tensor:
    """Centre of each cell crop: the cell pixel nearest a central point, first in raster order on ties.

    Args:
        mask: (n, h, w) bool cell masks, each with at least one pixel.
        centre: the central point: ``"mean"``, the rounded centroid (cellpose 3/4), or ``"median"``, the
            coordinate-wise median (cellpose 2 and MEDIAR).

    Returns:
        (n,) int64 flat indices into (h, w).
    """
    if centre not in ("mean", "median"):
        raise ValueError(f"centre: expected 'mean' or 'median', got {centre!r}.")
    n, h, w = mask.shape
    y = torch.arange(h, device=mask.device, dtype=torch.float64)[:, None].expand(h, w)
    x = torch.arange(w, device=mask.device, dtype=torch.float64)[None, :].expand(h, w)
    if centre == "mean":
        m = mask.to(torch.float64)
        area = m.sum((1, 2))
        cy, cx = torch.round((m * y).sum((1, 2)) / area), torch.round((m * x).sum((1, 2)) / area)
    else:
        cy, cx = _masked_median(y, mask), _masked_median(x, mask)
    distance = (y - cy[:, None, None]) ** 2 + (x - cx[:, None, None]) ** 2
    return distance.masked_fill(~mask, float("inf")).view(n, -1).argmin(1)


def _masked_median(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(n,) median of (h, w) ``values`` over each (n, h, w) mask; the mean of the middle two for even counts."""
    ordered = values.expand(mask.shape).masked_fill(~mask, float("inf")).flatten(1).sort(1).values
    count = mask.flatten(1).sum(1, keepdim=True)
    return ((ordered.gather(1, (count - 1) // 2) + ordered.gather(1, count // 2)) / 2)[:, 0]


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
        left, centre, right, up, middle, down = (
            t[:, :, :-2],
            t[:, :, 1:-1],
            t[:, :, 2:],
            r[:, :-2],
            r[:, 1:-1],
            r[:, 2:],
        )
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


def heat_to_flows(
    heat: torch.Tensor, mask: torch.Tensor, log_heat: bool = False, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Unit central-difference gradient of padded heat.

    Args:
        heat: (n, h + 2, w + 2) field with a one-pixel border.
        mask: (n, h, w) bool pixels that get flows.
        log_heat: take the gradient of ``log(1 + heat)``.
        labels: (n, h + 2, w + 2) labels matching ``heat``; if given, a neighbour of another label counts as
            zero heat (no cell sees its neighbours' heat), else every neighbour's heat counts (cellpose).

    Returns:
        (n, 2, h, w) float flows (dy, dx), unit length on mask pixels with a non-zero gradient, else zero.
    """
    if log_heat:
        heat = torch.log1p(heat)
    h, w = mask.shape[-2:]

    def neighbour(dy: int, dx: int) -> torch.Tensor:
        value = heat[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        if labels is None:
            return value
        return value * (labels[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] == labels[:, 1:-1, 1:-1])

    dy = neighbour(1, 0) - neighbour(-1, 0)
    dx = neighbour(0, 1) - neighbour(0, -1)
    norm = torch.hypot(dy, dx)  # hypot does not underflow for tiny gradients far from the centre
    keep = mask & (norm > 0)
    norm = torch.where(keep, norm, torch.ones_like(norm))
    return torch.stack((dy, dx), 1) / norm[:, None] * keep[:, None]  # divide: 1 / norm may overflow


def _underflow(heat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(n,) True for cells with a pixel at exactly zero heat (unreached, or below the dtype's range)."""
    return ((heat[:, 1:-1, 1:-1] == 0) & mask).flatten(1).any(1)


def labels_to_flows(
    labels, log_heat: bool = False, niter: int | None = None, neighbour_heat: bool = False, centre: str = "mean"
) -> torch.Tensor:
    """Cellpose flow fields of instance labels.

    Args:
        labels: (H, W) or (B, H, W) integer instance labels (torch or NumPy; any non-negative ids, 0 is
            background).
        log_heat: gradient of ``log(1 + T)`` instead of ``T`` (cellpose 2 and MEDIAR; cellpose 3/4 use ``T``).
        niter: diffusion iterations; default cellpose's ``2 * max(h + w + 2)`` over the image's cells (h, w:
            bounding boxes), per image of a batch.
        neighbour_heat: at pixels touching another cell, let the gradient see that cell's heat, as cellpose
            2-4 and MEDIAR do (flows then equal cellpose's ``masks_to_flows``); by default a neighbouring cell
            counts as zero heat, so edge flows point into their own cell and round trips are exact.
        centre: where heat starts: the cell pixel nearest the rounded centroid (``"mean"``, cellpose 3/4) or
            nearest the coordinate-wise median (``"median"``, cellpose 2 and MEDIAR).

    Returns:
        (B, 2, H, W) float32 unit flows (dy, dx) on the labels' device, zero on background. Networks of
        cellpose and MEDIAR are trained on ``CELLPOSE_FLOW_SCALE`` (5) times these.

    Heat is diffused in float32; cells where float32 leaves a pixel at zero heat (very long thin cells whose
    far end is more than ~1e-38 below the centre) are redone in float64.
    """
    labels = as_labels(labels)
    if centre not in ("mean", "median"):
        raise ValueError(f"centre: expected 'mean' or 'median', got {centre!r}.")
    flows = torch.zeros((labels.shape[0], 2) + tuple(labels.shape[1:]), dtype=torch.float32, device=labels.device)
    cells = find_cells(labels)
    if len(cells) == 0:
        return flows
    n_iter = _iterations(cells, niter)
    heat = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    flagged = _diffuse_cells(heat, labels, cells, n_iter, centre)
    _image_flows(flows, heat, labels, log_heat, neighbour_heat)
    if flagged.numel():
        redo = flagged.cpu().numpy()  # one host copy, after all batches
        _redo_in_float64(flows, heat, labels, cells.select(flagged), n_iter[redo], log_heat, neighbour_heat, centre)
    return flows


def _iterations(cells: Cells, niter: int | None) -> np.ndarray:
    """(N,) host iteration counts: ``niter``, or cellpose's 2 * max(h + w + 2) over each image's cells."""
    if niter is not None:
        if int(niter) < 0:
            raise ValueError(f"niter: expected a non-negative number of iterations, got {niter}.")
        return np.full(len(cells), int(niter))
    sizes = (cells.height + cells.width + 2).cpu().numpy()
    image = cells.image.cpu().numpy()
    largest = np.zeros(image.max() + 1, dtype=sizes.dtype)
    np.maximum.at(largest, image, sizes)
    return 2 * largest[image]


def _diffuse_cells(
    heat: torch.Tensor, labels: torch.Tensor, cells: Cells, n_iter: np.ndarray, centre: str
) -> torch.Tensor:
    """Diffuse every cell in float32 crops and add its heat into ``heat`` (B, H, W); return the indices of
    cells that underflowed."""
    flags, indices = [], []
    for batch in plan_crops(cells, CROP_BATCH_PIXELS, order=-n_iter):
        mask = gather_crops(labels, cells, batch)
        crop_heat = diffuse_heat(mask, crop_centres(mask, centre), n_iter[batch.host_index])
        scatter_crops(heat, crop_heat[:, 1:-1, 1:-1], cells, batch)
        flags.append(_underflow(crop_heat, mask))
        indices.append(batch.index)
    return torch.cat(indices)[torch.cat(flags)]


def _image_flows(flows, heat, labels, log_heat: bool, neighbour_heat: bool) -> None:
    """Write the unit gradient of (B, H, W) heat on the cells of (B, H, W) labels into ``flows``, in bands
    of rows (bounded temporaries)."""
    height, width = heat.shape[-2:]
    rows = max(1, BAND_PIXELS // max(width, 1))
    for r in range(0, height, rows):
        stop = min(r + rows, height)
        padding = (1, 1, int(r == 0), int(stop == height))  # zeros beyond the image
        band_heat = F.pad(heat[:, max(r - 1, 0) : stop + 1], padding)
        band_labels = None if neighbour_heat else F.pad(labels[:, max(r - 1, 0) : stop + 1], padding)
        flows[:, :, r:stop] = heat_to_flows(band_heat, labels[:, r:stop] > 0, log_heat, band_labels)


def _redo_in_float64(
    flows, heat, labels, cells: Cells, n_iter: np.ndarray, log_heat: bool, neighbour_heat: bool, centre: str
) -> None:
    """Recompute the flows of ``cells`` with float64 heat; neighbouring cells keep their float32 heat."""
    channel = torch.arange(2, device=flows.device)[None, :, None, None]
    for batch in plan_crops(cells, CROP_BATCH_PIXELS, order=-n_iter):
        mask = gather_crops(labels, cells, batch, margin=1)
        inner = mask[:, 1:-1, 1:-1]
        own = diffuse_heat(inner, crop_centres(inner, centre), n_iter[batch.host_index], torch.float64)
        around = gather_values(heat, cells, batch, margin=1).to(torch.float64) * neighbour_heat
        (b, y, x), _ = crop_index(cells, batch, flows.shape[-2:])
        existing = flows[b[:, None], channel, y[:, None], x[:, None]] * inner[:, None]
        scatter_crops(flows, -existing, cells, batch)  # x + -x == 0 exactly: the float32 result is gone
        scatter_crops(flows, heat_to_flows(torch.where(mask, own, around), inner, log_heat), cells, batch)
