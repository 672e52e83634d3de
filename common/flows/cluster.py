"""Clustering flow end points into cells (cellpose ``get_masks``), vectorised over all seeds.

End points are counted in a histogram of pixel bins. Seeds are bins holding more than ``min_count`` points
that are maxima of their 5x5 neighbourhood. Each seed grows ``grow`` times into the 3x3 neighbourhood,
within an 11x11 window around it, through bins holding more than ``min_grow_count`` points. A point joins
the seed whose grown region contains its bin; where regions overlap, the seed with more points wins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["cluster_end_points", "end_point_histogram", "find_seeds", "grow_seeds"]

WINDOW = 5  # half-width of the window a seed grows in (11x11)


def end_point_histogram(bins: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(H, W) float32 count of (P, 2) int64 bins (y, x) inside ``shape``."""
    flat = bins[:, 0] * shape[1] + bins[:, 1]
    return torch.bincount(flat, minlength=shape[0] * shape[1]).view(shape).float()


def find_seeds(histogram: torch.Tensor, min_count: int = 10) -> torch.Tensor:
    """(N, 2) int64 seeds (y, x): 5x5 local maxima of the (H, W) histogram above ``min_count``, ordered by
    ascending count (ties in raster order). Only bins above ``min_count`` are compared with their windows."""
    height, width = histogram.shape
    candidates = torch.nonzero(histogram > min_count)
    offsets = torch.arange(-2, 3, device=histogram.device)
    y = candidates[:, 0, None, None] + offsets[None, :, None]
    x = candidates[:, 1, None, None] + offsets[None, None, :]
    inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    window = histogram[y.clamp(0, height - 1), x.clamp(0, width - 1)] * inside
    count = histogram[candidates[:, 0], candidates[:, 1]]
    is_peak = count >= window.flatten(1).amax(1)
    seeds, count = candidates[is_peak], count[is_peak]
    return seeds[torch.sort(count, stable=True).indices]


def grow_seeds(
    histogram: torch.Tensor, seeds: torch.Tensor, grow: int = 5, min_grow_count: int = 2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regions of seeds grown through well-populated bins.

    Args:
        histogram: (H, W) end-point counts.
        seeds: (N, 2) int64 seed bins.
        grow: 3x3 dilations, each restricted to bins with more than ``min_grow_count`` points.

    Returns:
        (N, 11, 11) bool regions around each seed and (N, 11, 11) int64 flat bin indices of the windows
        (clamped to the image; positions outside it are never in a region).
    """
    height, width = histogram.shape
    offsets = torch.arange(-WINDOW, WINDOW + 1, device=seeds.device)
    y = seeds[:, 0, None, None] + offsets[None, :, None]
    x = seeds[:, 1, None, None] + offsets[None, None, :]
    inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    flat = y.clamp(0, height - 1) * width + x.clamp(0, width - 1)
    allowed = (histogram.view(-1)[flat] > min_grow_count) & inside
    region = torch.zeros(allowed.shape, dtype=torch.float32, device=seeds.device)
    region[:, WINDOW, WINDOW] = 1
    for _ in range(grow):
        region = F.max_pool2d(region[:, None], 3, stride=1, padding=1)[:, 0] * allowed
    return region > 0, flat


def cluster_end_points(
    end_points: torch.Tensor, shape: tuple[int, int], min_count: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Group flow end points into cells.

    Args:
        end_points: (P, 2) float final positions (y, x) in pixels, inside ``shape``.
        shape: (H, W) of the image.
        min_count: points a seed bin needs (more than).

    Returns:
        (P,) int64 cluster of each point, 1..N (0: in no seed's region), and (N, 2) int64 seed bins
        (y, x); cluster k grew from ``seeds[k - 1]``. Seeds are ordered by ascending count.
    """
    if end_points.ndim != 2 or end_points.shape[-1] != 2:
        raise ValueError(f"end_points: expected (P, 2) positions (y, x), got shape {tuple(end_points.shape)}.")
    limit = torch.tensor(shape, device=end_points.device) - 1
    bins = torch.minimum(end_points.round().long().clamp(min=0), limit)
    histogram = end_point_histogram(bins, shape)
    seeds = find_seeds(histogram, min_count)
    region, flat = grow_seeds(histogram, seeds)
    # each bin takes the highest-ranked (most populated) seed whose region covers it
    rank = torch.arange(1, seeds.shape[0] + 1, device=seeds.device)[:, None, None] * region
    owner = torch.zeros(shape[0] * shape[1], dtype=torch.int64, device=end_points.device)
    owner.scatter_reduce_(0, flat.view(-1), rank.view(-1), "amax")
    return owner[bins[:, 0] * shape[1] + bins[:, 1]], seeds
