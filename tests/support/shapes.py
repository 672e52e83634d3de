"""Synthetic label images for tests and benchmarks (independent of ``common.data.synthetic``): (H, W) int32
instance labels, ids 1..N."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed


def touching_ellipses(shape=(256, 256), n=60, radius=(6, 14), seed=0, min_size=0) -> np.ndarray:
    """(H, W) int32 labels of random ellipses pressed against each other, like crowded nuclei.

    Where ellipses overlap, each pixel goes to the ellipse it lies deepest in, so touching nuclei meet along
    a line and stay convex. Ellipses left with fewer than ``min_size`` pixels are removed and the rest
    re-partitioned, so no nucleus is a sliver and no background is enclosed by nuclei. Ids are 1..N.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    depth = np.empty((n,) + tuple(shape), np.float32)  # normalised radius of each pixel in each ellipse
    for index in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        ry, rx = rng.uniform(*radius, size=2)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dy * np.cos(angle) + dx * np.sin(angle)) / ry
        v = (-dy * np.sin(angle) + dx * np.cos(angle)) / rx
        depth[index] = np.sqrt(u**2 + v**2)
    while True:
        nearest = depth.argmin(axis=0)
        labels = np.where(depth.min(axis=0) <= 1, nearest + 1, 0)
        sizes = np.bincount(labels.ravel(), minlength=len(depth) + 1)[1:]
        if (sizes >= min_size).all():
            return labels.astype(np.int32)
        depth = depth[sizes >= min_size]


def random_cells(
    shape: tuple[int, int], n_cells: int, seed: int = 0, fill: float = 0.6, min_size: int = 15
) -> np.ndarray:
    """About ``n_cells`` touching cells grown from jittered grid seeds inside irregular blobs.

    Blobs are smoothed noise above a quantile (a ``fill`` fraction of the image, a few cells across); seeds
    sit on a grid with random jitter; cells are the watershed flooding of the blobs from the seeds inside
    them, so neighbours touch, sizes are similar and cells inherit the blobs' concave outlines. Cells
    smaller than ``min_size`` pixels are removed. Ids are 1..N in random spatial order.

    Returns:
        (H, W) int32 labels.
    """
    rng = np.random.default_rng(seed)
    spacing = max(np.sqrt(fill * shape[0] * shape[1] / max(n_cells, 1)), 2.0)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=spacing)
    foreground = noise > np.quantile(noise, 1 - fill)
    y, x = np.meshgrid(
        np.arange(spacing / 2, shape[0], spacing), np.arange(spacing / 2, shape[1], spacing), indexing="ij"
    )
    jitter = rng.uniform(-0.35, 0.35, size=(2,) + y.shape) * spacing
    y = np.clip(np.round(y + jitter[0]), 0, shape[0] - 1).astype(np.int64).ravel()
    x = np.clip(np.round(x + jitter[1]), 0, shape[1] - 1).astype(np.int64).ravel()
    inside = foreground[y, x]
    markers = np.zeros(shape, dtype=np.int32)
    markers[y[inside], x[inside]] = rng.permutation(int(inside.sum())) + 1
    labels = watershed(np.zeros(shape, dtype=np.uint8), markers, mask=foreground).astype(np.int32)
    areas = np.bincount(labels.ravel())
    small = areas < min_size
    small[0] = False
    labels[small[labels]] = 0
    return labels
