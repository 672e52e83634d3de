"""Writing the files of one dataset into a folder without ever replacing what is already there."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import tifffile
from PIL import Image

__all__ = ["DatasetFolder"]

logger = logging.getLogger(__name__)


def _encode_tiff(array: np.ndarray, handle: BinaryIO) -> None:
    tifffile.imwrite(handle, array, photometric="minisblack", planarconfig="contig" if array.ndim == 3 else None)


def _encode_pillow(array: np.ndarray, image_format: str, handle: BinaryIO) -> None:
    Image.fromarray(array).save(handle, format=image_format)


def _exists_message(path: Path) -> str:
    return f"{path} already exists; synthetic data never replaces existing files, choose another or an empty folder."


class DatasetFolder:
    """The files of one dataset, written under ``root``.

    Every file is created exclusively: if it exists, :class:`FileExistsError` names it and nothing is replaced.
    Paths passed as ``reserved`` (files or folders the dataset will create) are checked before anything is
    written, so a clash is found before a partial dataset lands in a user's folder.

    Args:
        root: folder of the dataset; created if missing.
        reserved: paths relative to ``root`` that must not exist yet.
    """

    def __init__(self, root: str | os.PathLike, reserved: Iterable[str] = ()):
        self.root = Path(root)
        self.written: list[Path] = []
        for relative in reserved:
            path = self.root / relative
            if path.exists() or path.is_symlink():
                raise FileExistsError(_exists_message(path))

    def _write(self, relative: str, encode: Callable[[BinaryIO], object]) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(path, "xb")
        except FileExistsError:
            raise FileExistsError(_exists_message(path)) from None
        with handle:
            encode(handle)
        self.written.append(path)
        return path

    def write_image(self, relative: str, array: np.ndarray) -> Path:
        """Image file in the format of the suffix of ``relative``.

        ``.png`` / ``.bmp``: (H, W) grey or (H, W, 3|4) RGB(A) uint8 through Pillow. ``.tif`` / ``.tiff``:
        uncompressed (H, W) grey or (H, W, C) multi-channel TIFF, one page with interleaved samples.
        """
        suffix = Path(relative).suffix.lower()
        if suffix in (".tif", ".tiff"):
            return self._write(relative, partial(_encode_tiff, array))
        return self._write(relative, partial(_encode_pillow, array, {".png": "PNG", ".bmp": "BMP"}[suffix]))

    def write_ome_tiff(self, relative: str, array: np.ndarray, pixel_size_um: float, uuid: str) -> Path:
        """OME-TIFF of an (H, W) array with its pixel size (µm) in the OME metadata.

        ``uuid`` is the document's UUID (tifffile would otherwise draw a new one and the file would not repeat).
        """
        metadata = {
            "axes": "YX",
            "Name": Path(relative).name.split(".")[0],
            "UUID": f"urn:uuid:{uuid}",
            "PhysicalSizeX": pixel_size_um,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": pixel_size_um,
            "PhysicalSizeYUnit": "µm",
        }
        return self._write(relative, partial(tifffile.imwrite, data=array, ome=True, metadata=metadata))

    def write_text(self, relative: str, text: str) -> Path:
        return self._write(relative, lambda handle: handle.write(text.encode("utf-8")))

    def write_json(self, relative: str, content) -> Path:
        return self.write_text(relative, json.dumps(content))

    def finish(self, layout: str) -> Path:
        """Log what was written where (file counts per top-level entry) and return the root."""
        tops = Counter(path.relative_to(self.root).parts[0] for path in self.written)
        size_mb = sum(path.stat().st_size for path in self.written) / 1e6
        listing = ", ".join(
            f"{name}{'/' if (self.root / name).is_dir() else ''} ({count})" for name, count in tops.items()
        )
        logger.info("%s: wrote %d files (%.1f MB) under %s: %s", layout, len(self.written), size_mb, self.root, listing)
        return self.root
