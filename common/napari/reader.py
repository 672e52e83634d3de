"""napari reader of the collection's outputs: TIFF / OME-TIFF and OME-Zarr, with their pixel size as the layers' scale.

Files named as the collection's mask writers name them (``*_label.tif(f)``, ``*_mask.tif(f)``) with integer pixels
open as labels layers, the others (fluorescence predictions, input images) as image layers. The OME-Zarr stores
of the whole-slide path (``*.ome.zarr`` folders) open lazily, every pyramid level as one multiscale layer: the root
image one image layer per channel, each ``labels/<name>`` a labels layer. No napari import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import zarr

from common.io.images import TIFF_SUFFIXES, image_suffix, read_image, read_pixel_size
from common.io.slides import Slide, open_slide
from common.napari.inference import LayerData

__all__ = ["get_reader", "read_layers", "read_ome_zarr"]

PathOrPaths = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
#: the postfixes the bundles' mask writers add (``SaveImageFiled(postfix="_label" / "_mask")``)
_MASK_NAME = re.compile(r"_(label|labels|mask)$", re.IGNORECASE)


def _paths(path: PathOrPaths) -> list[Path]:
    return [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]


def _is_zarr_store(path: Path) -> bool:
    return path.is_dir() and path.name.lower().endswith(".zarr")


def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """:func:`read_ome_zarr` for one ``*.zarr`` folder, :func:`read_layers` when every file of ``path`` is a TIFF /
    OME-TIFF, else None (napari asks another)."""
    paths = _paths(path)
    if len(paths) == 1 and _is_zarr_store(paths[0]):
        return read_ome_zarr
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


def _pyramid(path: Path) -> list[Slide]:
    """Every resolution level of the NGFF image at ``path``, opened lazily."""
    first = open_slide(path)
    return [first] + [open_slide(path, level) for level in range(1, first.levels)]


def _multiscale_layers(path: Path, names: list[str], layer_type: str) -> list[LayerData]:
    """One layer per channel of the NGFF image at ``path``, named ``names``: ``(Y, X)`` dask arrays, all levels
    (a multiscale layer when there are several), scale = level 0's pixel size (1 when unknown)."""
    levels = _pyramid(path)
    pixel_size = levels[0].pixel_size
    kwargs: dict[str, Any] = {
        "scale": list(pixel_size) if pixel_size is not None else [1.0, 1.0],
        "metadata": {"pixel_size_um": pixel_size, "source": str(path)},
        "multiscale": len(levels) > 1,
    }
    layers: list[LayerData] = []
    for c, name in enumerate(names):
        data = [level.array[c] for level in levels]
        layers.append((data if len(data) > 1 else data[0], {**kwargs, "name": name}, layer_type))
    return layers


def read_ome_zarr(path: PathOrPaths) -> list[LayerData]:
    """Layers of an OME-Zarr store (NGFF 0.4 / 0.5, as ``common.io.slides.OmeZarrWriter`` writes it), lazily:
    the root image one image layer per channel, named by its omero channel labels (else the store's name, with
    `` [c]`` for several channels), then each image of ``labels/`` as a labels layer named after it."""
    (store,) = _paths(path)
    channels = _pyramid(store)[0]
    stem = store.name[: -len(".ome.zarr")] if store.name.lower().endswith(".ome.zarr") else store.stem
    count = int(channels.array.shape[0])
    names = channels.channel_names or ([stem] if count == 1 else [f"{stem} [{c}]" for c in range(count)])
    layers = _multiscale_layers(store, list(names), "image")
    if (store / "labels").is_dir():
        attributes: dict[str, Any] = dict(zarr.open_group(store / "labels", mode="r").attrs.asdict())
        ngff: dict[str, Any] = attributes.get("ome", attributes)  # NGFF 0.5 nests the metadata under "ome"
        for name in ngff.get("labels", []):
            layers.extend(_multiscale_layers(store / "labels" / str(name), [str(name)], "labels"))
    return layers
