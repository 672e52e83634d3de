"""napari reader of the collection's outputs: TIFF / OME-TIFF with their pixel size as the layers' scale.

Files named as the collection's mask writers name them (``*_label.tif(f)``, ``*_mask.tif(f)``) with integer pixels
open as labels layers, the others (fluorescence predictions, input images) as image layers. No napari import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from common.io.images import TIFF_SUFFIXES, image_suffix, read_image, read_pixel_size
from common.napari.inference import LayerData

__all__ = ["get_reader", "read_layers"]

PathOrPaths = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
#: the postfixes the bundles' mask writers add (``SaveImageFiled(postfix="_label" / "_mask")``)
_MASK_NAME = re.compile(r"_(label|labels|mask)$", re.IGNORECASE)


def _paths(path: PathOrPaths) -> list[Path]:
    return [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """:func:`read_layers` when every file of ``path`` is a TIFF / OME-TIFF, else None (napari asks another)."""
    paths = _paths(path)
    return read_layers if paths and all(image_suffix(p) in TIFF_SUFFIXES for p in paths) else None


def read_layers(path: PathOrPaths) -> list[LayerData]:
    """Layers of each file: ``(H, W)`` as one layer, RGB(A) uint8 as one RGB layer, other ``(H, W, C)`` as one
    layer per channel; scale ``(y, x)`` = the pixel size in micrometres (``common.io.read_pixel_size``; 1 when
    the file does not say), also kept as ``metadata["pixel_size_um"]``."""
    layers: list[LayerData] = []
    for file in _paths(path):
        pixels, pixel_size = read_image(file), read_pixel_size(file)
        name = file.name[: -len(image_suffix(file))]
        kwargs: dict[str, Any] = {
            "name": name,
            "scale": list(pixel_size) if pixel_size is not None else [1.0, 1.0],
            "metadata": {"pixel_size_um": pixel_size, "source": str(file)},
        }
        if _MASK_NAME.search(name) and np.issubdtype(pixels.dtype, np.integer):
            channels = [pixels] if pixels.ndim == 2 else list(np.moveaxis(pixels, -1, 0))
            layer_type = "labels"
        elif pixels.ndim == 2 or (pixels.dtype == np.uint8 and pixels.shape[-1] in (3, 4)):
            channels, layer_type = [pixels], "image"
            kwargs["rgb"] = pixels.ndim == 3
        else:
            channels, layer_type = list(np.moveaxis(pixels, -1, 0)), "image"
        for k, channel in enumerate(channels):
            named = {**kwargs, "name": name if len(channels) == 1 else f"{name} [{k}]"}
            layers.append((channel, named, layer_type))
    return layers
