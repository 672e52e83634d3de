"""Instance label images from the three ways datasets store them, and MONAI transforms loading them.

Sources, told apart by what is given:

* a list or tuple of binary mask files, one object per file (DSB 2018 ``masks/*.png``): every non-zero pixel
  of file ``k`` (in the given order) gets id ``k + 1``; an empty file leaves its id unused. Two masks sharing
  a pixel are an error naming both files (``on_overlap="error"``), or the later file wins (``"last"``).
* one colour-coded ``(H, W, 3|4)`` file (BBBC039 ``masks/*.png``): each object has a colour, touching objects
  differ, black (and, with alpha, fully transparent) is background. Objects are the connected components of
  each colour, numbered 1..N in raster order; ``connectivity`` 1 (default) joins edge neighbours only, 2 also
  diagonal ones. 4-connectivity never joins two same-coloured nuclei that touch only at a corner; the price is
  that a pixel attached to its object only diagonally becomes its own object. 8-connectivity is the reverse,
  and is what the DSB watershed method uses (``measure.label`` of the mask's red channel).
* one grey ``(H, W)`` integer label file (NeurIPS ``*_label.tiff``): ids kept as they are.

Result: ``(H, W)`` int32 ids, 0 background.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import MetaKeys
from skimage.measure import label as connected_components

from .errors import ImageFileError
from .images import read_image

__all__ = [
    "read_instance_labels",
    "labels_from_mask_files",
    "labels_from_colour_image",
    "labels_from_grey_image",
    "LoadInstanceLabels",
    "LoadInstanceLabelsd",
]

PathLike = Union[str, os.PathLike]
LabelSource = Union[PathLike, Sequence[PathLike]]

_INT32_MAX = np.iinfo(np.int32).max


def read_instance_labels(source: LabelSource, on_overlap: str = "error", connectivity: int = 1) -> np.ndarray:
    """``(H, W)`` int32 instance ids from a list of mask files, a colour-coded file or a grey label file.

    Args:
        source: one path (colour-coded ``(H, W, 3|4)`` or grey ``(H, W)`` label image) or a list/tuple of
            binary mask files, one object each.
        on_overlap: for mask files sharing pixels, ``"error"`` or ``"last"`` (the later file wins).
        connectivity: of the components of each colour of a colour-coded file, 1 or 2 (with diagonals).

    Raises:
        ImageFileError: naming the file, for unreadable files, wrong ndim, masks of different sizes,
            overlapping masks, negative, fractional or too large ids.
    """
    if isinstance(source, (str, os.PathLike)):
        labels = read_image(source)
        if labels.ndim == 3:
            return labels_from_colour_image(labels, name=str(source), connectivity=connectivity)
        return labels_from_grey_image(labels, name=str(source))
    return labels_from_mask_files(source, on_overlap=on_overlap)


def labels_from_mask_files(paths: Sequence[PathLike], on_overlap: str = "error") -> np.ndarray:
    """``(H, W)`` int32 ids where the non-zero pixels of mask file ``paths[k]`` get id ``k + 1``."""
    if on_overlap not in ("error", "last"):
        raise ValueError(f"on_overlap: expected 'error' or 'last', got {on_overlap!r}.")
    if len(paths) == 0:
        raise ImageFileError("mask files: empty list, expected at least one mask file.")
    if len(paths) > _INT32_MAX:
        raise ImageFileError(f"{paths[0]}: {len(paths)} mask files exceed the int32 id range.")
    labels: np.ndarray | None = None
    for index, path in enumerate(paths):
        mask = _read_binary_mask(path)
        if labels is None:
            labels = np.zeros(mask.shape, dtype=np.int32)
        elif mask.shape != labels.shape:
            raise ImageFileError(f"{path}: mask of size {mask.shape}, expected {labels.shape} as {paths[0]}.")
        if on_overlap == "error" and (labels[mask] > 0).any():
            other = paths[int(labels[mask].max()) - 1]
            raise ImageFileError(f"{path}: mask overlaps {other}, expected one object per pixel.")
        labels[mask] = index + 1
    assert labels is not None  # paths is not empty
    return labels


def _read_binary_mask(path: PathLike) -> np.ndarray:
    """``(H, W)`` bool mask of one single-channel mask file (non-zero = object)."""
    mask = read_image(path)
    if mask.ndim != 2:
        raise ImageFileError(f"{path}: mask of shape {mask.shape}, expected a single-channel (H, W) mask.")
    return mask != 0


def labels_from_colour_image(colours: np.ndarray, name: str = "labels", connectivity: int = 1) -> np.ndarray:
    """``(H, W)`` int32 ids, 1..N in raster order, of the connected components of each colour.

    Args:
        colours: ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA integer image; black or alpha 0 is background.
        name: what to call the image in errors (its file).
        connectivity: 1 (edge neighbours) or 2 (edge and diagonal neighbours).
    """
    _check_connectivity(connectivity)
    if colours.ndim != 3 or colours.shape[2] not in (3, 4):
        raise ImageFileError(f"{name}: colour-coded labels of shape {colours.shape}, expected (H, W, 3) or (H, W, 4).")
    if not np.issubdtype(colours.dtype, np.integer):
        raise ImageFileError(f"{name}: colour-coded labels of dtype {colours.dtype}, expected integer colours.")
    rgb = colours[..., :3].astype(np.int64)
    bits = max(int(rgb.max()).bit_length(), 1)
    codes = (rgb[..., 0] << (2 * bits)) | (rgb[..., 1] << bits) | rgb[..., 2]
    if colours.shape[2] == 4:
        codes[colours[..., 3] == 0] = 0
    return connected_components(codes, background=0, connectivity=connectivity).astype(np.int32)


def _check_connectivity(connectivity: int) -> None:
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity: expected 1 (edge neighbours) or 2 (with diagonals), got {connectivity!r}.")


def labels_from_grey_image(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """``(H, W)`` int32 copy of a grey label image, ids kept; integral floats and bools are accepted.

    Args:
        labels: ``(H, W)`` ids, 0 background.
        name: what to call the image in errors (its file).
    """
    if labels.ndim != 2:
        raise ImageFileError(f"{name}: label image of shape {labels.shape}, expected (H, W) ids.")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise ImageFileError(f"{name}: float labels with fractional or non-finite values, expected integer ids.")
    elif labels.dtype.kind not in "biu":
        raise ImageFileError(f"{name}: label image of dtype {labels.dtype}, expected integer ids.")
    if labels.size and labels.min() < 0:
        raise ImageFileError(f"{name}: negative label id {labels.min()}, expected ids >= 0.")
    if labels.size and labels.max() > _INT32_MAX:
        raise ImageFileError(f"{name}: label id {labels.max()} exceeds the int32 range, expected ids <= {_INT32_MAX}.")
    return labels.astype(np.int32)


def _source_name(source: LabelSource) -> str:
    """The file of ``source``, or the common folder of its mask files."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return os.path.commonpath([str(Path(path).parent) for path in source]) if len(source) else ""


class LoadInstanceLabels(Transform):
    """Load instance labels (see :func:`read_instance_labels`) as a ``(1, H, W)`` int32 MetaTensor.

    The MetaTensor carries what ``LoadImage(ensure_channel_first=True)`` would give: ``filename_or_obj`` (the
    file, or the folder of the mask files), ``spatial_shape`` ``(H, W)``, ``original_channel_dim``
    ``"no_channel"`` and an identity ``affine``.

    Args:
        on_overlap: for mask files sharing pixels, ``"error"`` or ``"last"`` (the later file wins).
        connectivity: of the components of each colour of a colour-coded file, 1 or 2 (with diagonals).
    """

    def __init__(self, on_overlap: str = "error", connectivity: int = 1) -> None:
        if on_overlap not in ("error", "last"):
            raise ValueError(f"on_overlap: expected 'error' or 'last', got {on_overlap!r}.")
        _check_connectivity(connectivity)
        self.on_overlap = on_overlap
        self.connectivity = connectivity

    def __call__(self, source: LabelSource) -> MetaTensor:
        """``(1, H, W)`` int32 ids of ``source`` (one label file or a list of mask files)."""
        labels = read_instance_labels(source, on_overlap=self.on_overlap, connectivity=self.connectivity)
        meta = {
            "filename_or_obj": _source_name(source),
            MetaKeys.SPATIAL_SHAPE: np.asarray(labels.shape),
            MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel",
        }
        return MetaTensor(torch.from_numpy(labels[None]), affine=torch.eye(3, dtype=torch.float64), meta=meta)


class LoadInstanceLabelsd(MapTransform):
    """Dictionary version of :class:`LoadInstanceLabels`: each key's source becomes ``(1, H, W)`` int32 ids.

    Args:
        keys: keys whose values are a label file or a list of mask files.
        on_overlap: for mask files sharing pixels, ``"error"`` or ``"last"``.
        connectivity: of the components of each colour of a colour-coded file, 1 or 2 (with diagonals).
        allow_missing_keys: don't raise for keys missing from the data.
    """

    def __init__(
        self, keys: KeysCollection, on_overlap: str = "error", connectivity: int = 1, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadInstanceLabels(on_overlap=on_overlap, connectivity=connectivity)

    def __call__(self, data: Mapping[Hashable, LabelSource]) -> dict:
        d: dict[Hashable, Any] = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d
