"""Instance label images: validation and removal of the instances at the image border (NumPy)."""

from __future__ import annotations

import numpy as np

__all__ = ["as_label_array", "remove_border_instances"]


def as_label_array(labels, name: str) -> np.ndarray:
    """(H, W) NumPy label image of ``labels`` (NumPy or torch, singleton axes squeezed), ids >= 0.

    Raises:
        ValueError, TypeError: naming ``name``, for another shape, a non-integer dtype or negative ids.
    """
    array = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
    array = np.squeeze(array)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected an (H, W) label image, got shape {tuple(np.shape(labels))}.")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise TypeError(f"{name}: expected integer instance labels, got dtype {array.dtype}.")
    if array.size and array.min() < 0:
        raise ValueError(f"{name}: instance ids must be >= 0, found {array.min()}.")
    return array


def remove_border_instances(labels, width: int = 2) -> np.ndarray:
    """(H, W) labels without the instances that have a pixel within ``width`` pixels of the image edge.

    Other ids are kept as they are (not renumbered). NumPy or torch input; returns a NumPy array.
    """
    labels = as_label_array(labels, "labels").copy()
    if width <= 0:
        return labels
    frame = np.ones(labels.shape, bool)
    frame[width:-width, width:-width] = False
    touching = np.unique(labels[frame])
    labels[np.isin(labels, touching[touching > 0])] = 0
    return labels
