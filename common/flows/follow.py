"""Following flow fields: Euler steps of every foreground pixel along bilinearly interpolated flows (cellpose).

Each step moves a point by the flow sampled at its position, then clamps it to the image. Flows are sampled
from ``flows * mask``, so points slow down where they leave the foreground. Sampling is exact at pixel centres
(``align_corners=True`` with pixel coordinates scaled by ``size - 1``; cellpose pairs that scaling with
``align_corners=False``, which samples up to half a pixel off near the image edges).

Points converge geometrically on their cell's sink; once a step moves a point less than ``tol`` (1e-3 px by
default) it stops there. Most points settle long before 200 steps, and the end points differ from stepping
every point ``niter`` times by about ``tol`` (clustering bins them to whole pixels). Settled points leave
the working set every ``CHECK_EVERY`` steps, which costs one small host sync on a GPU; ``tol=0`` never
retires a point. (Points oscillating around a sink are not retired: a slowly damped oscillation cannot be
told from a lasting one, and its end point would be off by its amplitude.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import as_flows, as_image

__all__ = ["follow_flows"]

#: Points stepped together on CPU: their positions and the flows they visit stay in cache.
POINT_CHUNK_CPU = 1 << 16
#: Steps between checks for settled points.
CHECK_EVERY = 10


def follow_flows(flows, mask, niter: int = 200, tol: float = 1e-3) -> torch.Tensor:
    """Follow flows from every foreground pixel for ``niter`` Euler steps.

    Args:
        flows: (2, H, W) or (B, 2, H, W) float flows (dy, dx) in pixels per step (unit scale: divide network
            outputs by ``CELLPOSE_FLOW_SCALE`` first).
        mask: (H, W) or (B, H, W) bool foreground; points start at its pixels, flows outside it are zero.
        niter: number of steps.
        tol: a point whose step is shorter than ``tol`` pixels along both axes has settled and stops (checked
            every ``CHECK_EVERY`` steps; 0 steps every point ``niter`` times).

    Returns:
        (P, 2) float32 final positions (y, x) in pixels, one per foreground pixel in the order of
        ``torch.nonzero(mask)``, on the flows' device.
    """
    flows = as_flows(flows)
    mask = as_image(mask, flows, "mask")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask: expected a bool foreground mask, got dtype {mask.dtype}.")
    if int(niter) < 0:
        raise ValueError(f"niter: expected a non-negative number of steps, got {niter}.")
    ends = []
    for b in range(flows.shape[0]):
        start = torch.nonzero(mask[b]).to(torch.float32)
        ends.append(_follow_points(flows[b] * mask[b], start, int(niter), float(tol)))
    return torch.cat(ends) if ends else torch.zeros((0, 2), device=flows.device)


def _follow_points(flows: torch.Tensor, points: torch.Tensor, niter: int, tol: float) -> torch.Tensor:
    """Final positions (P, 2) (y, x) of ``points`` (P, 2) after ``niter`` steps along (2, H, W) flows."""
    height, width = flows.shape[-2:]
    # grid_sample works in [-1, 1] coordinates ordered (x, y); scale positions and flows alike
    scale = torch.tensor([2 / max(width - 1, 1), 2 / max(height - 1, 1)], device=flows.device)
    # sample where each pixel moves to, not its flow: bilinear interpolation reproduces the coordinates
    # exactly, so one grid_sample does the whole step p + flow(p)
    target = flows.flip(0).float() * scale[:, None, None]
    target[0] += torch.arange(width, device=flows.device) * scale[0] - 1
    target[1] += torch.arange(height, device=flows.device)[:, None] * scale[1] - 1
    target = target[None]
    grid = points.flip(1) * scale - 1
    chunk = POINT_CHUNK_CPU if flows.device.type == "cpu" else max(points.shape[0], 1)
    for first in range(0, points.shape[0], chunk):
        grid[first : first + chunk] = _step_chunk(target, grid[first : first + chunk], niter, tol * scale)
    return ((grid + 1) / scale).flip(1)


def _step(target: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """One Euler step of (P, 2) normalised (x, y) positions, clamped to the image."""
    return F.grid_sample(target, grid[None, None], mode="bilinear", align_corners=True)[0, :, 0].clamp_(-1, 1).T


def _step_chunk(target: torch.Tensor, grid: torch.Tensor, niter: int, tol: torch.Tensor) -> torch.Tensor:
    """Step (P, 2) positions ``niter`` times; points whose step is shorter than ``tol`` (2,) stop there."""
    final = grid.clone()
    active = torch.arange(grid.shape[0], device=grid.device)
    position = grid
    done = 0
    while done < niter and active.numel():
        run = min(CHECK_EVERY, niter - done)
        for _ in range(run - 1):
            position = _step(target, position)
        previous, position = position, _step(target, position)
        done += run
        if done == niter:
            final[active] = position
            break
        moving = ((position - previous).abs() >= tol).any(1)
        settled = torch.nonzero(~moving)[:, 0]
        final[active[settled]] = position[settled]
        active, position = active[moving], position[moving]
    return final
