"""Instance labels from flows and cell probability: follow, cluster, check, clean (cellpose ``compute_masks``).

Steps, each its own function: :func:`follow_flows` from every pixel with ``cellprob > cellprob_threshold``;
:func:`cluster_end_points`; drop masks larger than ``max_size_fraction`` of the image; drop masks whose
:func:`flow_error` exceeds ``flow_threshold``; drop masks below ``min_size``, :func:`fill_holes`, drop masks
below ``min_size`` again; renumber 1..N in raster order of the masks' first pixels, so ids do not depend on
how the image was tiled.

Images larger than ``tile_size`` are processed in tiles with ``tile_overlap`` pixels of context on each side.
A mask belongs to the tile whose core holds its first pixel and is computed entirely within that tile's context, so
masks crossing tile borders come out whole with one id, and the result equals the untiled one as long as
cells are smaller than the overlap (a warning names the masks cut by a tile's context). Memory is bounded
by the tile size; counts and indices are int64 throughout, only the output is int32.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ._checks import as_flows, as_image
from .cleanup import areas, fill_holes, flow_error
from .cluster import cluster_end_points
from .follow import follow_flows

__all__ = ["flows_to_labels", "CELLPOSE_FLOW_SCALE", "tile_grid"]

#: Cellpose and MEDIAR networks are trained to predict this multiple of unit flows.
CELLPOSE_FLOW_SCALE = 5.0


def flows_to_labels(
    flows,
    cellprob,
    cellprob_threshold: float = 0.0,
    flow_threshold: float = 0.4,
    niter: int = 200,
    min_size: int = 15,
    max_size_fraction: float = 0.4,
    flow_scale: float = 1.0,
    log_heat: bool = False,
    neighbour_heat: bool = False,
    centre: str = "mean",
    tile_size: int | None = 4096,
    tile_overlap: int = 128,
    whole_shape: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Instance labels from flows and cell probability.

    Args:
        flows: (2, H, W) or (B, 2, H, W) flows (dy, dx); divided by ``flow_scale`` to unit scale.
        cellprob: (H, W) or (B, H, W) cell probability, as logits (threshold 0.0, cellpose's default) or
            probabilities (use a threshold such as 0.5).
        cellprob_threshold: pixels with ``cellprob > cellprob_threshold`` are followed.
        flow_threshold: masks whose flow error exceeds this are dropped; 0 or None skips the check.
        niter: Euler steps of :func:`follow_flows`.
        min_size: masks with fewer pixels are dropped (before and after filling holes).
        max_size_fraction: masks larger than this fraction of the image are dropped.
        flow_scale: scale of ``flows``: 1 for unit flows such as :func:`labels_to_flows` returns,
            ``CELLPOSE_FLOW_SCALE`` (5) for raw outputs of cellpose and MEDIAR networks.
        log_heat, neighbour_heat, centre: the flow variant of :func:`labels_to_flows` the network was trained
            on, recomputed by the flow-error check: cellpose 3/4 ``neighbour_heat=True``; cellpose 2 and MEDIAR
            also ``log_heat=True, centre="median"``.
        tile_size: images with a side longer than this are processed in tiles of this size; None: never.
        tile_overlap: context added on each side of a tile; should exceed the largest cell's diameter.
        whole_shape: (H, W) of the whole image when ``flows`` are a block of it (blockwise inference of a slide):
            ``max_size_fraction`` is then of the whole image's area, so that a block drops the masks the whole
            image drops; None: of the input's own area.

    Returns:
        (H, W) or (B, H, W) int32 labels, 0 background, masks 1..N per image, on the flows' device.
    """
    squeeze = getattr(flows, "ndim", 0) == 3
    flows = as_flows(flows)
    cellprob = as_image(cellprob, flows, "cellprob")
    _check_options(niter, min_size, max_size_fraction, flow_scale, tile_size, tile_overlap)
    options: dict[str, Any] = dict(
        cellprob_threshold=cellprob_threshold,
        flow_threshold=flow_threshold or 0.0,
        niter=int(niter),
        min_size=int(min_size),
        max_size=max_size_fraction * _area(whole_shape or flows.shape[-2:]),
        variant=dict(log_heat=log_heat, neighbour_heat=neighbour_heat, centre=centre),
        flow_scale=float(flow_scale),
    )
    per_image = []
    for b in range(flows.shape[0]):
        if tile_size is not None and max(flows.shape[-2:]) > tile_size:
            per_image.append(_tiled_labels(flows[b], cellprob[b], tile_size, tile_overlap, options))
        else:
            per_image.append(_image_labels(flows[b], cellprob[b], **options)[0].to(torch.int32))
    labels = torch.stack(per_image)
    return labels[0] if squeeze else labels


def _area(shape) -> int:
    height, width = (int(side) for side in shape)
    if height < 1 or width < 1:
        raise ValueError(f"whole_shape: expected (H, W) of positive sides, got {tuple(shape)}.")
    return height * width


def _check_options(niter, min_size, max_size_fraction, flow_scale, tile_size, tile_overlap) -> None:
    if int(niter) < 0:
        raise ValueError(f"niter: expected a non-negative number of steps, got {niter}.")
    if int(min_size) < 0:
        raise ValueError(f"min_size: expected a non-negative pixel count, got {min_size}.")
    if not 0 < max_size_fraction <= 1:
        raise ValueError(f"max_size_fraction: expected a fraction in (0, 1], got {max_size_fraction}.")
    if not flow_scale > 0:
        raise ValueError(f"flow_scale: expected a positive scale, got {flow_scale}.")
    if tile_size is not None and (int(tile_size) < 1 or int(tile_overlap) < 0):
        raise ValueError(f"tile_size, tile_overlap: expected >= 1 and >= 0, got {tile_size}, {tile_overlap}.")


def _image_labels(
    flows: torch.Tensor,
    cellprob: torch.Tensor,
    cellprob_threshold: float,
    flow_threshold: float,
    niter: int,
    min_size: int,
    max_size: float,
    variant: dict,
    flow_scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One image in one pass: (H, W) int64 labels 1..N in raster order of their first pixels, and those
    (N, 2) int64 first pixels (y, x)."""
    shape = (flows.shape[-2], flows.shape[-1])
    flows = flows.float() / flow_scale  # unit flows, one tile at a time
    labels = torch.zeros(shape, dtype=torch.int64, device=flows.device)
    mask = cellprob > cellprob_threshold
    end_points = follow_flows(flows, mask, niter)
    clusters, seeds = cluster_end_points(end_points, shape)
    labels[mask] = clusters
    n = seeds.shape[0]
    keep = areas(labels, n) <= max_size
    if flow_threshold > 0 and n:
        errors = flow_error(labels * keep[labels], flows, **variant)  # up to the largest id left
        keep[1 : 1 + errors.numel()] &= errors <= flow_threshold
    keep &= areas(labels, n) >= min_size
    labels = fill_holes(labels * keep[labels])
    keep &= areas(labels, n) >= min_size
    keep[0] = False
    return _renumber_by_first_pixel(labels * keep[labels], n)


def _renumber_by_first_pixel(labels: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids 1..K in raster order of each mask's first pixel; returns labels and the (K, 2) first pixels."""
    width = labels.shape[1]
    first = torch.full((n + 1,), labels.numel(), dtype=torch.int64, device=labels.device)
    first.scatter_reduce_(0, labels.reshape(-1), torch.arange(labels.numel(), device=labels.device), "amin")
    present = first[1:] < labels.numel()
    order = torch.argsort(first[1:])[: int(present.sum())]  # masks without pixels sort last
    new_id = torch.zeros(n + 1, dtype=torch.int64, device=labels.device)
    new_id[1 + order] = torch.arange(1, order.numel() + 1, device=labels.device)
    anchors = first[1 + order]
    return new_id[labels], torch.stack((anchors // width, anchors % width), 1)


def tile_grid(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis: (core start, core stop, context start, context stop), cores covering it once."""
    return [
        (s, min(s + tile, length), max(s - overlap, 0), min(s + tile + overlap, length)) for s in range(0, length, tile)
    ]


def _tiled_labels(flows: torch.Tensor, cellprob: torch.Tensor, tile: int, overlap: int, options: dict) -> torch.Tensor:
    """(H, W) int32 labels of one image computed tile by tile; ids 1..N in raster order of first pixels."""
    height, width = flows.shape[-2:]
    out = torch.zeros((height, width), dtype=torch.int32, device=flows.device)
    tile_anchors, cut, count = [], 0, 0
    for y0, y1, cy0, cy1 in tile_grid(height, tile, overlap):
        for x0, x1, cx0, cx1 in tile_grid(width, tile, overlap):
            labels, first = _image_labels(flows[:, cy0:cy1, cx0:cx1], cellprob[cy0:cy1, cx0:cx1], **options)
            first = first + torch.tensor([cy0, cx0], device=flows.device)
            # a mask belongs to the tile whose core holds its first pixel; only that tile writes it
            owned = (first[:, 0] >= y0) & (first[:, 0] < y1) & (first[:, 1] >= x0) & (first[:, 1] < x1)
            owned = torch.cat([owned.new_zeros(1), owned])
            cut += _count_cut(labels, owned, (cy0 > 0, cy1 < height, cx0 > 0, cx1 < width))
            provisional = (torch.cumsum(owned, 0) + count) * owned  # ids continue the count of earlier tiles
            count += int(owned.sum())
            if count >= 2**31:
                raise OverflowError(f"flows_to_labels: more than {2**31 - 1} masks do not fit int32 labels.")
            region = out[cy0:cy1, cx0:cx1]
            region.copy_(torch.where(owned[labels], provisional[labels].to(torch.int32), region))
            tile_anchors.append(first[owned[1:]])
    if cut:
        warnings.warn(
            f"flows_to_labels: {cut} masks reach the edge of their tile's context and may be cut; "
            f"raise tile_overlap (now {overlap}) above the largest cell diameter.",
            stacklevel=3,
        )
    # final ids 1..N in raster order of first pixels, as the untiled computation numbers them; a mask that
    # two tiles both wrote (they disagreed on its first pixel) keeps the id that survived, gaps close
    anchors = torch.cat(tile_anchors)
    present = torch.zeros(count + 1, dtype=torch.bool, device=flows.device)
    for y0, y1, _, _ in tile_grid(height, tile, 0):
        present[out[y0:y1].reshape(-1).long()] = True
    present[0] = False
    flat = torch.where(present[1:], anchors[:, 0] * width + anchors[:, 1], height * width)
    order = torch.argsort(flat)[: int(present.sum())]
    lookup = torch.zeros(count + 1, dtype=torch.int32, device=flows.device)
    lookup[1 + order] = torch.arange(1, order.numel() + 1, dtype=torch.int32, device=flows.device)
    for y0, y1, _, _ in tile_grid(height, tile, 0):
        out[y0:y1] = lookup[out[y0:y1].long()]
    return out


def _count_cut(labels: torch.Tensor, owned: torch.Tensor, inner_edges: tuple[bool, bool, bool, bool]) -> int:
    """Number of owned masks touching an edge of the tile context that is not an image edge."""
    edges = [e for e, inner in zip((labels[0], labels[-1], labels[:, 0], labels[:, -1]), inner_edges) if inner]
    if not edges:
        return 0
    touching = torch.zeros_like(owned)
    touching[torch.cat(edges)] = True
    return int((touching & owned).sum())
