"""Synthetic instance label images for tests and benchmarks: many touching, non-convex cells."""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

__all__ = ["random_cells", "import_cellpose_dynamics"]


def random_cells(
    shape: Tuple[int, int], n_cells: int, seed: int = 0, fill: float = 0.6, min_size: int = 15
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


def import_cellpose_dynamics():
    """``cellpose.dynamics`` of an installed cellpose, for comparisons; raises ImportError if unavailable.

    cellpose imports torchvision only for augmentations in ``cellpose.transforms``, which the dynamics do
    not use. Where torchvision is missing (it is not a dependency of this project), a placeholder module
    stands in for it during the import and is removed afterwards.
    """
    import importlib
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("cellpose") is None:
        raise ImportError("cellpose is not installed")
    names = [
        "torchvision",
        "torchvision.transforms",
        "torchvision.transforms.functional",
        "torchvision.transforms._functional_tensor",
    ]
    stubbed = []
    if importlib.util.find_spec("torchvision") is None:
        for name in names:
            sys.modules[name] = types.ModuleType(name)
            stubbed.append(name)
        sys.modules["torchvision"].transforms = sys.modules["torchvision.transforms"]
        sys.modules["torchvision.transforms"].functional = sys.modules["torchvision.transforms.functional"]
        sys.modules["torchvision.transforms"]._functional_tensor = sys.modules[
            "torchvision.transforms._functional_tensor"
        ]
    try:
        return importlib.import_module("cellpose.dynamics")
    finally:
        for name in stubbed:
            sys.modules.pop(name, None)
