"""MONAI transforms writing the prediction of each input file, named after it, keeping label ids and float values."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from .images import image_suffix, write_image

__all__ = ["SaveChannelFoldersd", "SaveImageFiled", "label_dtype", "mask_to_uint8"]


def label_dtype(labels: np.ndarray) -> np.dtype:
    """Smallest of uint16 / uint32 / uint64 that holds every id of ``labels`` (never uint8, never truncated)."""
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels: instance ids must be >= 0, found {labels.min()}.")
    highest = int(labels.max()) if labels.size else 0
    for dtype in (np.uint16, np.uint32, np.uint64):
        if highest <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"labels: id {highest} does not fit in 64 bits.")


def mask_to_uint8(mask: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """A binary mask of any shape, e.g. (C, H, W), with values 0 and 1, as uint8 0 and 255 (how viewers show masks).

    Tensors stay tensors (MetaTensor meta data kept) on their device; any other value than 0 or 1 is refused.
    """
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(
            f"mask: expected values 0 and 1 only, got {mask.dtype} values from {mask.min()} to {mask.max()}."
        )
    if isinstance(mask, torch.Tensor):
        return (mask * 255).to(torch.uint8)
    return (np.asarray(mask) * 255).astype(np.uint8)


class SaveImageFiled(MapTransform):
    """Write ``data[key]`` to ``<output_dir>/<input stem><postfix><suffix>`` and record the path in ``data``.

    The input's name comes from ``data[name_key].meta["filename_or_obj"]``; its pixel size, where the reader
    found one (meta ``pixel_size_um``), goes into the output. An existing file is never replaced unless
    ``overwrite`` is set.

    Args:
        keys: keys of (C, H, W) arrays to write (C = 1 is written as an (H, W) image).
        output_dir: destination folder, created if absent.
        postfix: appended to the input's stem, e.g. ``"_label"`` gives ``cell_00001_label.tiff``.
        suffix: file suffix, ``.tiff`` by default.
        kind: ``"labels"`` writes integer ids in the smallest of uint16/uint32 that holds them, ``"float"``
            writes float32, ``"keep"`` keeps the dtype.
        name_key: key whose meta data names the input file.
        path_key: where the written path is stored (``<key>_path`` by default).
        overwrite: replace existing files.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str,
        postfix: str = "",
        suffix: str = ".tiff",
        kind: str = "keep",
        name_key: str = "image",
        path_key: str | None = None,
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if kind not in ("labels", "float", "keep"):
            raise ValueError(f"kind: expected 'labels', 'float' or 'keep', got {kind!r}.")
        self.output_dir, self.postfix, self.suffix, self.kind = Path(output_dir), postfix, suffix, kind
        self.name_key, self.path_key, self.overwrite = name_key, path_key, overwrite

    def _pixels(self, value, path: Path) -> np.ndarray:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if array.ndim != 3:
            raise ValueError(f"{path}: expected a channel-first (C, H, W) array to write, got shape {array.shape}.")
        return self.as_written(array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1), path)

    def as_written(self, array: np.ndarray, path: Path | str = "") -> np.ndarray:
        """``array`` (any shape) in the values and dtype this writer writes (``kind``); ``path`` names it in errors."""
        array = np.asarray(array)
        if self.kind == "labels":
            if not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
                fraction = ~np.isfinite(array) | (array != np.round(array))
                if fraction.any():
                    raise ValueError(
                        f"{path}: labels must be whole numbers, got {int(fraction.sum())} other values "
                        f"(e.g. {array[fraction].flat[0]}); refusing to truncate them."
                    )
            return array.astype(label_dtype(array))
        return array.astype(np.float32) if self.kind == "float" else array

    def _source(self, data: Mapping) -> tuple[str, tuple[float, float] | None]:
        meta = getattr(data.get(self.name_key), "meta", None) or data.get(f"{self.name_key}_meta_dict") or {}
        source = meta.get("filename_or_obj")
        if not source:
            raise KeyError(f"{self.name_key}: no 'filename_or_obj' in its meta data to name the output after.")
        source = Path(str(source))
        stem = source.name[: -len(image_suffix(source))] if image_suffix(source) else source.stem
        pixel_size = meta.get("pixel_size_um")
        if pixel_size is None or np.isnan(np.asarray(pixel_size, dtype=float)).any():
            return stem, None
        y_um, x_um = (float(size) for size in np.ravel(pixel_size))
        return stem, (y_um, x_um)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        stem, pixel_size = self._source(d)
        for key in self.key_iterator(d):
            path = self.output_dir / f"{stem}{self.postfix}{self.suffix}"
            write_image(path, self._pixels(d[key], path), pixel_size=pixel_size, overwrite=self.overwrite)
            d[self.path_key or f"{key}_path"] = str(path)
        return d


class SaveChannelFoldersd(SaveImageFiled):
    """Write channel ``k`` of ``data[key]`` (C, H, W) to ``<output_dir>/<folders[k]>/<input stem><postfix><suffix>``.

    One file per channel, each in its own folder (the Light My Cells challenge expects
    ``<organelle>-fluorescence-ome-tiff/<input file name>``, see :func:`common.io.lmc_output_folders`); each is
    written as :class:`SaveImageFiled` writes an (H, W) image: name, pixel size, ``kind`` and ``overwrite`` alike.
    The written paths, in channel order, are stored under ``path_key`` (``<key>_paths`` by default).

    Args:
        keys: keys of (C, H, W) arrays, C = ``len(folders)``.
        output_dir: the folder holding the channel folders (created if absent).
        folders: one sub-folder of ``output_dir`` per channel.
        postfix, suffix, kind, name_key, overwrite, allow_missing_keys: as :class:`SaveImageFiled`.
        path_key: where the list of written paths is stored.

    Raises:
        ValueError: a key holds another number of channels than ``folders`` names (the key named).
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str,
        folders: Sequence[str],
        postfix: str = "",
        suffix: str = ".tiff",
        kind: str = "keep",
        name_key: str = "image",
        path_key: str | None = None,
        overwrite: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, output_dir, postfix, suffix, kind, name_key, path_key, overwrite, allow_missing_keys)
        self.folders = list(folders)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        stem, pixel_size = self._source(d)
        for key in self.key_iterator(d):
            channels = d[key]
            if len(channels) != len(self.folders):
                raise ValueError(
                    f"{key}: {len(channels)} channels to write, but folders names {len(self.folders)}: {self.folders}."
                )
            paths = [self.output_dir / folder / f"{stem}{self.postfix}{self.suffix}" for folder in self.folders]
            for channel, path in zip(channels, paths):
                write_image(path, self._pixels(channel[None], path), pixel_size=pixel_size, overwrite=self.overwrite)
            d[self.path_key or f"{key}_paths"] = [str(path) for path in paths]
        return d
