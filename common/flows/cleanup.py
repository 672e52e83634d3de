"""Clean-up of instance labels: the masks' flow error, hole filling, mask areas.

All functions take (H, W) int64 labels whose ids are 1..N (0 background; an id may have no pixels), as
:func:`common.flows.cluster_end_points` produces them, and work on the labels' device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._cells import crop_index, find_cells, gather_crops, plan_crops
from .heat import labels_to_flows

__all__ = ["flow_error", "fill_holes", "areas"]

#: Crop pixels flood-filled together.
CROP_BATCH_PIXELS = 1 << 18
#: Flood-fill steps between checks for convergence.
FILL_CHECK_EVERY = 8


def areas(labels: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """(N + 1,) int64 pixel count of each id 0..N of (H, W) labels."""
    n = int(labels.max()) if n is None else n
    return torch.bincount(labels.reshape(-1), minlength=n + 1)


def flow_error(labels: torch.Tensor, flows: torch.Tensor, **variant) -> torch.Tensor:
    """Mean squared difference between the flows of each mask and the given flows (cellpose's flow error).

    Args:
        labels: (H, W) int64 labels with ids 1..N.
        flows: (2, H, W) unit-scale flows (dy, dx) the masks were computed from.
        variant: ``log_heat``, ``neighbour_heat``, ``centre``: the flow variant to recompute, as in
            :func:`labels_to_flows`.

    Returns:
        (N,) float32: for mask k, the mean over its pixels of ``|mask_flow - flow|**2`` (summed over dy, dx);
        0 for ids without pixels.
    """
    if flows.shape != (2,) + tuple(labels.shape):
        raise ValueError(f"flows: expected shape {(2,) + tuple(labels.shape)}, got {tuple(flows.shape)}.")
    n = int(labels.max()) if labels.numel() else 0
    squared = ((labels_to_flows(labels, **variant)[0] - flows.float()) ** 2).sum(0)
    total = torch.zeros(n + 1, dtype=torch.float32, device=labels.device)
    total.index_add_(0, labels.reshape(-1), squared.reshape(-1))
    return (total / areas(labels, n).clamp(min=1))[1:]


def _outside(mask: torch.Tensor) -> torch.Tensor:
    """(n, h, w) bool: pixels of padded crops reachable from the crop border without crossing ``mask``.

    Flood fill through 4-connected non-mask pixels (the background connectivity of scipy's
    ``binary_fill_holes``), run until it stops changing.
    """
    free = ~mask
    reached = torch.zeros_like(mask)
    reached[:, 0], reached[:, -1], reached[:, :, 0], reached[:, :, -1] = True, True, True, True
    reached &= free
    while True:
        before = reached
        for _ in range(FILL_CHECK_EVERY):
            grown = reached.clone()
            grown[:, 1:] |= reached[:, :-1]
            grown[:, :-1] |= reached[:, 1:]
            grown[:, :, 1:] |= reached[:, :, :-1]
            grown[:, :, :-1] |= reached[:, :, 1:]
            reached = grown & free
        if torch.equal(reached, before):  # one host sync per FILL_CHECK_EVERY steps
            return reached


def fill_holes(labels: torch.Tensor) -> torch.Tensor:
    """Fill the holes of every mask (as cellpose's ``fill_holes_and_remove_small_masks``).

    A hole of a mask is any set of pixels in its bounding box that the box border cannot reach without
    crossing the mask: background or other masks it encloses. Enclosed pixels join the mask; a pixel enclosed
    by several masks joins the largest (filled) one, so a mask inside another is absorbed.

    Args:
        labels: (H, W) int64 labels with ids 1..N.

    Returns:
        (H, W) int64 labels, same ids (an absorbed id has no pixels left).
    """
    cells = find_cells(labels[None])
    if len(cells) == 0:
        return labels.clone()
    height, width = labels.shape
    batches = plan_crops(cells, CROP_BATCH_PIXELS)
    filled = []  # per batch: (n, h, w) bool, the mask with its holes
    filled_area = torch.zeros(len(cells), dtype=torch.int64, device=labels.device)
    for batch in batches:
        mask = F.pad(gather_crops(labels[None], cells, batch), (1, 1, 1, 1))
        filled.append(~_outside(mask)[:, 1:-1, 1:-1])
        filled_area[batch.index] = filled[-1].flatten(1).sum(1)
    # a pixel claimed by several masks goes to the largest (ties: the higher id): rank cells in that order
    rank = torch.empty(len(cells), dtype=torch.int64, device=labels.device)
    rank[torch.sort(filled_area, stable=True).indices] = torch.arange(1, len(cells) + 1, device=labels.device)
    winner = torch.zeros(height * width, dtype=torch.int64, device=labels.device)
    for batch, claim in zip(batches, filled):
        (_, y, x), in_image = crop_index(cells, batch, (height, width))
        value = rank[batch.index][:, None, None] * (claim & in_image)
        winner.scatter_reduce_(0, (y * width + x).expand_as(claim).reshape(-1), value.reshape(-1), "amax")
    label_of_rank = torch.zeros(len(cells) + 1, dtype=labels.dtype, device=labels.device)
    label_of_rank[rank] = cells.label.to(labels.dtype)
    return label_of_rank[winner].view(height, width)
