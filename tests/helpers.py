"""Small label-image generators shared by the tests (independent of common.data.synthetic)."""

import numpy as np


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
