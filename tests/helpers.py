"""Small label-image generators shared by the tests (independent of common.data.synthetic)."""

import numpy as np


def touching_ellipses(shape=(256, 256), n=60, radius=(6, 14), seed=0) -> np.ndarray:
    """(H, W) int32 labels of random ellipses painted in turn, later ones over earlier ones, so many touch.

    Ids are 1..n in painting order; a nucleus almost hidden by later ones may be left with few or no pixels.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for index in range(1, n + 1):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        ry, rx = rng.uniform(*radius, size=2)
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = dy * np.cos(angle) + dx * np.sin(angle)
        v = -dy * np.sin(angle) + dx * np.cos(angle)
        labels[(u / ry) ** 2 + (v / rx) ** 2 <= 1] = index
    return labels


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Labels with instances under ``min_size`` pixels set to background (ids otherwise kept)."""
    sizes = np.bincount(labels.ravel())
    return np.where(sizes[labels] >= min_size, labels, 0)
