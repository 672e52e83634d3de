"""MONAI transform writing each channel of a prediction to its own file, named from the item's fields."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from .images import write_image

__all__ = ["SaveChannelsd"]


def _plain(value):
    """A Python scalar for 0-d tensors and NumPy scalars, the value itself for str and numbers, else None."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else None
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.size == 1):
        return value.item()
    return value if isinstance(value, (str, int, float)) else None


def _as_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` in ``dtype``: integer types are rounded and clipped to their range, never wrapped around."""
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        return np.clip(np.rint(array), limits.min, limits.max).astype(dtype)
    return array.astype(dtype)


class SaveChannelsd(MapTransform):
    """Write channel ``k`` of ``data[key]`` (C, H, W) to ``output_dir / name_format.format(channel=c_k, **fields)``.

    ``fields`` are the scalar entries (str, numbers, one-element tensors), e.g. ``id`` and ``magnification``, of
    the item and of the image's meta data (where :class:`common.transforms.CopyItemsToMetad` puts them, so that
    they reach engine outputs); ``c_k`` is entry ``k`` of ``channels_key`` in the item or the meta data (1, ...,
    C when absent). So ``"{magnification}x_images/{id}A{channel:02d}Z01C{channel:02d}.tif"`` writes the
    adipocyte challenge's names. An existing file is never replaced unless ``overwrite`` is set. The written paths
    are stored under ``path_key`` (``<key>_paths`` by default).

    Args:
        keys: keys of (C, H, W) images.
        output_dir: destination folder, created if absent.
        name_format: path relative to ``output_dir``; its suffix picks the format (see ``write_image``).
        channels_key: item entry listing the channel number of each channel.
        dtype: written dtype; integer dtypes (``"uint16"``: 16-bit camera values) are rounded and clipped.
        overwrite: replace existing files.
        path_key: where the list of written paths is stored.
        allow_missing_keys: do not raise for absent keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str,
        name_format: str,
        channels_key: str = "channels",
        dtype: str = "uint16",
        overwrite: bool = False,
        path_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir, self.name_format, self.channels_key = Path(output_dir), name_format, channels_key
        self.dtype, self.overwrite, self.path_key = np.dtype(dtype), overwrite, path_key

    def as_written(self, array: np.ndarray) -> np.ndarray:
        """``array`` (any shape) in the values and dtype this writer writes (``dtype``: integers rounded, clipped)."""
        return _as_dtype(np.asarray(array), self.dtype)

    def _paths(self, data: Mapping, count: int, key: Hashable) -> list[Path]:
        entries = {**(getattr(data[key], "meta", None) or {}), **data}
        channels = entries.get(self.channels_key)
        numbers = list(range(1, count + 1)) if channels is None else [int(_plain(c)) for c in channels]
        if len(numbers) != count:
            raise ValueError(f"{key}: {count} channels but {self.channels_key} names {len(numbers)}: {numbers}.")
        fields = {name: value for name, value in ((str(k), _plain(v)) for k, v in entries.items()) if value is not None}
        try:
            return [self.output_dir / self.name_format.format(**{**fields, "channel": number}) for number in numbers]
        except KeyError as error:
            raise KeyError(f"name_format {self.name_format!r}: no entry {error} among {sorted(fields)}.") from None

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if array.ndim != 3:
                raise ValueError(f"{key}: expected a channel-first (C, H, W) image to write, got shape {array.shape}.")
            paths = self._paths(d, array.shape[0], key)
            for channel, path in zip(array, paths):
                write_image(path, self.as_written(channel), overwrite=self.overwrite)
            d[self.path_key or f"{key}_paths"] = [str(path) for path in paths]
        return d
