"""Whole-slide images, read lazily and written chunk by chunk: OME-Zarr (NGFF 0.4 and 0.5) and tiled, pyramidal
(OME-)TIFF / BigTIFF.

A slide is channel-first ``(C, Y, X)``. :func:`open_slide` gives a :class:`Slide` whose ``array`` is a lazy dask
array with the file's own chunks (tiles), so a region costs only the chunks it touches. NGFF axes ``t, c, z`` and
TIFF axes ``T, C, S, Z`` (and pages) become ``C``: ``t`` must be 1, channels and focal planes are merged
channel-major (``C index = c * Z + z``), RGB samples become three channels, a 2-D image gets ``C = 1``.

:class:`OmeZarrWriter` writes an NGFF image (and optionally one label image under ``labels/``) block by block into
``<output>.partial/``; :meth:`OmeZarrWriter.finish` builds the pyramid chunk by chunk, writes the metadata and
renames the folder to ``<output>``. :func:`tiff_from_zarr` turns such a store into a tiled pyramidal OME-TIFF,
tile by tile. :func:`write_cell_table` writes the per-cell CSV beside the labels.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Union, cast

import dask.array as da
import numpy as np
import zarr

from .atomic import atomic_path
from .errors import ImageFileError
from .images import TIFF_SUFFIXES, image_suffix, ome_pixels_element, read_pixel_size

__all__ = [
    "Slide",
    "open_slide",
    "ImageSpec",
    "LabelSpec",
    "OmeZarrWriter",
    "CELL_COLUMNS",
    "CELL_DTYPE",
    "write_cell_table",
    "tiff_from_zarr",
]

PathLike = Union[str, os.PathLike]

#: micrometres per NGFF (UDUNITS-2) length unit
_NGFF_MICROMETRES = {
    "angstrom": 1e-4, "picometer": 1e-6, "nanometer": 1e-3, "micrometer": 1.0, "micron": 1.0,
    "millimeter": 1e3, "centimeter": 1e4, "meter": 1e6,
}  # fmt: skip

#: TIFF axis letters (tifffile) merged into the channel axis, in the order they are merged; Z comes last
_TIFF_CHANNEL_AXES = "CSEIQ"


@dataclass(frozen=True)
class Slide:
    """One resolution level of a whole-slide image.

    Attributes:
        array: (C, Y, X) lazy dask array, chunked as the file is.
        pixel_size: (y, x) micrometres of this level's pixels, or None when the file does not say.
        path: the file or store.
        level: the resolution level read (0 is full resolution).
        levels: how many levels the file holds.
        channel_names: one name per channel of ``array``, or None when the file does not name them.
    """

    array: da.Array
    pixel_size: tuple[float, float] | None
    path: Path
    level: int
    levels: int
    channel_names: list[str] | None


def open_slide(path: PathLike, level: int = 0) -> Slide:
    """Open resolution ``level`` of an OME-Zarr store (NGFF 0.4 or 0.5) or a (OME-/Big)TIFF, lazily.

    Args:
        path: an OME-Zarr folder (an image group with ``multiscales``, or a bioformats2raw root holding one as
            ``0/``) or a TIFF file (tiled or not, pyramidal or not; the first image series is read).
        level: resolution level, 0 for full resolution.

    Returns:
        the :class:`Slide`, array ``(C, Y, X)``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageFileError: ``path`` is not a slide, has axes other than t, c, z, y, x, or ``t > 1`` (named in the
            message, as is ``path``).
        ValueError: ``level`` is not one of the file's levels (the message says how many there are).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: slide not found.")
    if path.is_dir():
        return _open_zarr(path, level)
    if image_suffix(path) in TIFF_SUFFIXES or _is_tiff(path):
        return _open_tiff(path, level)
    raise ImageFileError(
        f"{path}: not a slide, expected an OME-Zarr folder or a TIFF / OME-TIFF file (.tif, .tiff, .ome.tif)."
    )


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _check_level(path: Path, level: int, levels: int) -> None:
    if not isinstance(level, (int, np.integer)) or not 0 <= level < levels:
        raise ValueError(f"{path}: no resolution level {level!r}, the slide has {levels} level(s): 0 to {levels - 1}.")


def _to_channels(array: da.Array, axes: str, path: Path) -> da.Array:
    """(C, Y, X) view of ``array`` whose axes are named by ``axes`` in lower case out of ``t``, ``y``, ``x``,
    ``z`` and channel-like letters; ``t`` must be 1, channel-like axes then ``z`` are merged into C."""
    if "y" not in axes or "x" not in axes or len(axes) != array.ndim:
        raise ImageFileError(f"{path}: axes {axes!r} of shape {array.shape}, expected y and x axes.")
    if "t" in axes:
        steps = array.shape[axes.index("t")]
        if steps != 1:
            raise ImageFileError(f"{path}: {steps} time points, expected one (t = 1): a time series is not a slide.")
        array = array[tuple(0 if axis == "t" else slice(None) for axis in axes)]
        axes = axes.replace("t", "")
    stacked = [i for i, axis in enumerate(axes) if axis not in "zyx"] + [
        i for i, axis in enumerate(axes) if axis == "z"
    ]
    array = array.transpose(*stacked, axes.index("y"), axes.index("x"))
    return array.reshape((-1, *array.shape[-2:]))


def _merged_names(names: list[str] | None, planes: int, channels: int) -> list[str] | None:
    """Channel names after merging ``planes`` focal planes into each of the named channels."""
    if not names or len(names) * planes != channels:
        return None
    return [name if planes == 1 else f"{name} z{z}" for name in names for z in range(planes)]


# --------------------------------------------------------------------------------------------------------- OME-Zarr


def _ngff_attributes(group: zarr.Group) -> dict:
    """The NGFF metadata of ``group``: its attributes, unwrapped from ``ome`` for NGFF 0.5."""
    attributes: dict = dict(group.attrs.asdict())
    ome = attributes.get("ome")
    return dict(ome) if isinstance(ome, dict) else attributes


def _multiscale_group(path: Path) -> tuple[zarr.Group, dict]:
    """The image group of the store at ``path`` and its NGFF attributes (with ``multiscales``)."""
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as error:  # zarr raises several types for folders that are not stores
        raise ImageFileError(f"{path}: not a slide, the folder is not a Zarr group ({error}).") from error
    attributes = _ngff_attributes(group)
    if "multiscales" not in attributes and "bioformats2raw.layout" in attributes and "0" in group:
        group = cast(zarr.Group, group["0"])  # bioformats2raw layout: the first image is the group "0"
        attributes = _ngff_attributes(group)
    multiscales = attributes.get("multiscales")
    if not multiscales or not isinstance(multiscales, list) or not multiscales[0].get("datasets"):
        raise ImageFileError(f"{path}: not a slide, the Zarr group has no NGFF 'multiscales' metadata with datasets.")
    return group, attributes


def _open_zarr(path: Path, level: int) -> Slide:
    group, attributes = _multiscale_group(path)
    multiscale = attributes["multiscales"][0]
    datasets = multiscale["datasets"]
    _check_level(path, level, len(datasets))
    try:
        stored = cast(zarr.Array, group[datasets[level]["path"]])
    except KeyError as error:
        raise ImageFileError(f"{path}: multiscales names dataset {datasets[level]['path']!r}, absent.") from error
    axes = multiscale.get("axes") or list("tczyx"[-stored.ndim :])
    names = [axis["name"] if isinstance(axis, dict) else str(axis) for axis in axes]
    unknown = sorted(set(names) - set("tczyx"))
    if unknown or len(names) != stored.ndim:
        raise ImageFileError(f"{path}: NGFF axes {names} for an array of shape {stored.shape}, expected t, c, z, y, x.")
    array = _to_channels(da.from_zarr(stored), "".join(names), path)
    planes = stored.shape[names.index("z")] if "z" in names else 1
    omero = attributes.get("omero") or {}
    labels = [str(channel.get("label", "")) for channel in omero.get("channels", [])] or None
    return Slide(
        array=array,
        pixel_size=_ngff_pixel_size(multiscale, datasets[level], axes, names),
        path=path,
        level=level,
        levels=len(datasets),
        channel_names=_merged_names(labels, planes, array.shape[0]),
    )


def _ngff_pixel_size(multiscale: dict, dataset: dict, axes: list, names: list[str]) -> tuple[float, float] | None:
    """(y, x) micrometres from the scale transforms of a dataset (times the multiscale's own), or None where
    the y or x axis has no known length unit."""
    scale = np.ones(len(names))
    for transform in [*dataset.get("coordinateTransformations", []), *multiscale.get("coordinateTransformations", [])]:
        if transform.get("type") == "scale" and "scale" in transform:
            scale = scale * np.asarray(transform["scale"], float)
    sizes = []
    for name in ("y", "x"):
        axis = axes[names.index(name)]
        unit = axis.get("unit") if isinstance(axis, dict) else None
        if unit not in _NGFF_MICROMETRES:
            return None
        sizes.append(float(scale[names.index(name)]) * _NGFF_MICROMETRES[unit])
    return sizes[0], sizes[1]


# ------------------------------------------------------------------------------------------------------------ TIFF


class _TiffLevel:
    """Array-like view of one level of a TIFF's first series, read through tifffile's zarr store.

    The file is opened on first access in each process and the handle is not pickled, so a dask array over
    it travels to distributed workers.
    """

    def __init__(self, path: Path, level: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.level, self.shape, self.dtype = path, level, shape, np.dtype(dtype)
        self.ndim = len(shape)
        self._array: Any = None

    def _open(self) -> Any:
        if self._array is None:
            import tifffile

            self._array = zarr.open_array(tifffile.imread(self.path, aszarr=True, series=0, level=self.level), mode="r")
        return self._array

    @property
    def chunks(self) -> tuple[int, ...]:
        return tuple(self._open().chunks)

    def __getitem__(self, key) -> np.ndarray:
        return self._open()[key]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_array": None}


def _open_tiff(path: Path, level: int) -> Slide:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tiff:
            if not tiff.series:
                raise ImageFileError(f"{path}: not a slide, no image in the TIFF.")
            series = tiff.series[0]
            levels = len(series.levels)
            _check_level(path, level, levels)
            chosen = series.levels[level]
            shape, full_shape, axes, dtype = tuple(chosen.shape), tuple(series.shape), chosen.axes, chosen.dtype
            names = _ome_channel_names(tiff.ome_metadata if tiff.is_ome else None)
        view = _TiffLevel(path, level, shape, dtype)
        chunks = view.chunks
    except (ImageFileError, ValueError):
        raise
    except Exception as error:  # tifffile raises many types for damaged files
        raise ImageFileError(f"{path}: not a slide, cannot read the TIFF ({error}).") from error
    letters = "".join(axis.lower() if axis in "TZYX" else "c" if axis in _TIFF_CHANNEL_AXES else "?" for axis in axes)
    if "?" in letters:
        raise ImageFileError(f"{path}: TIFF axes {axes!r}, expected only T, C, S, Z, Y, X (or pages).")
    token = f"tiff-{path.resolve()}-{path.stat().st_mtime_ns}-{level}"
    array = _to_channels(da.from_array(view, chunks=chunks, name=token, asarray=True), letters, path)
    planes = shape[axes.index("Z")] if "Z" in axes else 1
    return Slide(
        array=array,
        pixel_size=_level_pixel_size(read_pixel_size(path), full_shape, shape, axes),
        path=path,
        level=level,
        levels=levels,
        channel_names=_merged_names(names, planes, array.shape[0]),
    )


def _level_pixel_size(
    full_size: tuple[float, float] | None, full_shape: tuple[int, ...], shape: tuple[int, ...], axes: str
) -> tuple[float, float] | None:
    """(y, x) pixel size of a level from the full-resolution one: scaled by the power of two the level's side
    was halved by (rounding up), else by the ratio of the sides."""
    if full_size is None:
        return None
    sizes = []
    for axis, size in zip("YX", full_size):
        full, side = full_shape[axes.index(axis)], shape[axes.index(axis)]
        power = round(math.log2(full / side))
        factor = 2.0**power if math.ceil(full / 2**power) == side else full / side
        sizes.append(size * factor)
    return sizes[0], sizes[1]


def _ome_channel_names(ome_xml: str | None) -> list[str] | None:
    """``Name`` of every ``Channel`` of the first OME ``Pixels`` element, or None if any is unnamed."""
    pixels = ome_pixels_element(ome_xml)
    if pixels is None:
        return None
    names = [element.get("Name") for element in pixels if element.tag.split("}")[-1] == "Channel"]
    return [str(name) for name in names] if names and all(names) else None


# ---------------------------------------------------------------------------------------------------------- writer


class ImageSpec(NamedTuple):
    """The root image of a store: dtype, number of channels and their names (omero labels)."""

    dtype: Any
    channels: int = 1
    names: Sequence[str] | None = None


class LabelSpec(NamedTuple):
    """The label image of a store, written to ``labels/<name>/``."""

    name: str = "cells"
    dtype: Any = "uint32"


_MANIFEST = "writer.json"


class OmeZarrWriter:
    """Write an NGFF image, and optionally one label image, block by block; build the pyramid; rename into place.

    Level 0 is written with :meth:`write_image` / :meth:`write_labels` in blocks aligned with the chunk grid
    (from several processes at once if wanted: the writer pickles). Everything goes to ``<path>.partial/``; a
    writer made again on the same path with the same arguments reopens it, keeping the blocks written so far.
    :meth:`finish` builds levels 1.. (2x: images by 2x2 mean, labels by taking every second pixel) until the
    longer side fits one chunk, writes the metadata (axes c, y, x; pixel size in micrometres when known; omero
    channel labels; ``labels/`` with ``image-label``) and renames the folder to ``path``.

    Args:
        path: the final store, e.g. ``out.ome.zarr``.
        shape_yx: (Y, X) of level 0.
        image: :class:`ImageSpec` (or a tuple ``(dtype, channels, names)``) of the root image, (C, Y, X).
        labels: :class:`LabelSpec` (or ``(name, dtype)``) of the label image, stored (1, Y, X), or None.
        chunk: side of the square (y, x) chunks; blocks are aligned to it.
        pixel_size: (y, x) micrometres of level 0, or None.
        ngff: "0.4" (Zarr v2 store) or "0.5" (Zarr v3 store).
        overwrite: replace an existing ``path`` (only at the final rename); without it an existing ``path`` is
            an error.
        levels: at most this many pyramid levels (1: level 0 only); None halves until one chunk.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: bad arguments, or a ``.partial`` store written with other arguments (naming both).
    """

    #: folder inside the partial store where a caller may keep its own records; :meth:`finish` removes it
    LEDGER = "blocks"

    def __init__(
        self,
        path: PathLike,
        shape_yx: Sequence[int],
        image: ImageSpec | tuple,
        labels: LabelSpec | tuple | None = None,
        chunk: int = 256,
        pixel_size: Sequence[float] | None = None,
        ngff: str = "0.4",
        overwrite: bool = False,
        levels: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_levels = None if levels is None else int(levels)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.image = ImageSpec(*image)
        self.labels = None if labels is None else LabelSpec(*labels)
        self.shape_yx = (int(shape_yx[0]), int(shape_yx[1]))
        self.chunk = int(chunk)
        self.pixel_size = None if pixel_size is None else (float(pixel_size[0]), float(pixel_size[1]))
        self.ngff = str(ngff)
        self.overwrite = bool(overwrite)
        self._check_arguments()
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path}: exists; pass overwrite=True to replace it.")
        self._arrays: dict[str, zarr.Array] = {}
        self._complete = False
        if (self.partial / _MANIFEST).is_file():
            self._check_resumable()
        else:
            self._create()

    @property
    def ledger(self) -> Path:
        """Folder ``<path>.partial/blocks`` for the caller's per-block records (removed by :meth:`finish`)."""
        return self.partial / self.LEDGER

    @property
    def channels(self) -> int:
        return int(self.image.channels)

    def _check_arguments(self) -> None:
        where = str(self.path)
        if self.ngff not in ("0.4", "0.5"):
            raise ValueError(f"{where}: ngff {self.ngff!r}, expected '0.4' or '0.5'.")
        if min(self.shape_yx) < 1 or self.chunk < 1:
            raise ValueError(f"{where}: shape {self.shape_yx} and chunk {self.chunk} must be positive.")
        if self.channels < 1 or (self.image.names is not None and len(self.image.names) != self.channels):
            raise ValueError(f"{where}: {self.channels} channel(s) named {self.image.names}, expected one name each.")
        if self.labels is not None and np.dtype(self.labels.dtype).kind not in "iu":
            raise ValueError(f"{where}: labels dtype {self.labels.dtype}, expected an integer dtype.")
        if self.max_levels is not None and self.max_levels < 1:
            raise ValueError(f"{where}: levels {self.max_levels}, expected at least 1.")
        if self.pixel_size is not None and not all(math.isfinite(s) and s > 0 for s in self.pixel_size):
            raise ValueError(f"{where}: pixel size {self.pixel_size}, expected two positive micrometre values.")

    def _manifest(self) -> dict:
        return {
            "shape_yx": list(self.shape_yx),
            "chunk": self.chunk,
            "ngff": self.ngff,
            "image": {"dtype": np.dtype(self.image.dtype).str, "channels": self.channels},
            "labels": None
            if self.labels is None
            else {"name": self.labels.name, "dtype": np.dtype(self.labels.dtype).str},
        }

    def _check_resumable(self) -> None:
        stored = json.loads((self.partial / _MANIFEST).read_text())
        expected = self._manifest()
        differing = [
            f"{key} {stored.get(key)} (asked {value})" for key, value in expected.items() if stored.get(key) != value
        ]
        if differing:
            raise ValueError(
                f"{self.partial}: an interrupted store of other arguments ({'; '.join(differing)}); "
                "delete it or resume with the same arguments."
            )

    def _create(self) -> None:
        if self.partial.exists():
            leftovers = {entry.name for entry in self.partial.iterdir()}
            if leftovers - {".zgroup", ".zattrs", "zarr.json", "0", "labels"}:
                raise FileExistsError(f"{self.partial}: exists and is not a store this writer started; move it away.")
            shutil.rmtree(self.partial)  # a store killed before its manifest: no block was written
        root = zarr.open_group(self.partial, mode="w", zarr_format=2 if self.ngff == "0.4" else 3)
        self._create_level(root, "0", (self.channels, *self.shape_yx), self.image.dtype)
        if self.labels is not None:
            group = root.create_group("labels").create_group(self.labels.name)
            self._create_level(group, "0", (1, *self.shape_yx), self.labels.dtype)
        with atomic_path(self.partial / _MANIFEST) as partial:
            partial.write_text(json.dumps(self._manifest()))

    def _create_level(self, group: zarr.Group, name: str, shape: tuple[int, ...], dtype) -> zarr.Array:
        options: dict = {"dimension_names": ["c", "y", "x"]}
        if self.ngff == "0.4":
            options = {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
        chunks = (1, min(self.chunk, shape[1]), min(self.chunk, shape[2]))
        return group.create_array(
            name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0, overwrite=True, **options
        )

    def _array(self, key: str) -> zarr.Array:
        if key not in self._arrays:
            self._arrays[key] = zarr.open_array(self.partial / key, mode="r+")
        return self._arrays[key]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": {}}

    def write_image(self, y0: int, x0: int, block: np.ndarray) -> None:
        """Write ``block`` (C, h, w), or (h, w) for one channel, at (y0, x0) of level 0 of the image."""
        block = np.asarray(block)
        if block.ndim == 2:
            block = block[None]
        if block.ndim != 3 or block.shape[0] != self.channels:
            raise ValueError(f"{self.path}: image block of shape {block.shape}, expected ({self.channels}, h, w).")
        self._write("0", y0, x0, _cast(block, self.image.dtype, self.path, "image"))

    def write_labels(self, y0: int, x0: int, block: np.ndarray) -> None:
        """Write ``block`` (h, w) or (1, h, w) of non-negative integer labels at (y0, x0) of level 0."""
        if self.labels is None:
            raise ValueError(f"{self.path}: the writer was made without labels.")
        block = np.asarray(block)
        if block.ndim == 2:
            block = block[None]
        if block.ndim != 3 or block.shape[0] != 1:
            raise ValueError(f"{self.path}: labels block of shape {block.shape}, expected (h, w) or (1, h, w).")
        self._write(f"labels/{self.labels.name}/0", y0, x0, _cast(block, self.labels.dtype, self.path, "labels"))

    def _write(self, key: str, y0: int, x0: int, block: np.ndarray) -> None:
        height, width = self.shape_yx
        h, w = block.shape[1:]
        for start, size, side, axis in ((y0, h, height, "y"), (x0, w, width, "x")):
            aligned = start % self.chunk == 0 and (size % self.chunk == 0 or start + size == side)
            if not aligned or start < 0 or size < 1 or start + size > side:
                raise ValueError(
                    f"{self.path}: block {axis} {start}:{start + size} of a side {side}, expected a start and end on "
                    f"the chunk grid of {self.chunk} (or the end of the image)."
                )
        self._array(key)[:, y0 : y0 + h, x0 : x0 + w] = block

    def levels(self) -> int:
        """How many pyramid levels :meth:`finish` writes: halving until the longer side fits one chunk (or the
        ``levels`` asked for)."""
        count, side = 1, max(self.shape_yx)
        while side > self.chunk and (self.max_levels is None or count < self.max_levels):
            side, count = -(-side // 2), count + 1
        return count

    def complete(self) -> Path:
        """Build the pyramid chunk by chunk and write the NGFF metadata in ``<path>.partial`` (once per writer):
        a whole OME-Zarr there, to export before :meth:`finish` renames it.

        Returns:
            ``<path>.partial``.
        """
        if self._complete:
            return self.partial
        levels = self.levels()
        self._build_pyramid(self.partial, levels, _mean_2x2)
        attributes = {"multiscales": [self._multiscale("image", levels, "mean")], "omero": self._omero()}
        if self.labels is not None:
            name = self.labels.name
            self._build_pyramid(self.partial / "labels" / name, levels, _stride_2x2)
            label_attributes: dict[str, Any] = {
                "multiscales": [self._multiscale(name, levels, "nearest")],
                "image-label": {"source": {"image": "../../"}},
            }
            if self.ngff == "0.4":
                label_attributes["image-label"]["version"] = "0.4"
            self._set_attributes(self.partial / "labels" / name, label_attributes)
            self._set_attributes(self.partial / "labels", {"labels": [name]})
        self._set_attributes(self.partial, attributes)
        self._complete = True
        return self.partial

    def finish(self) -> Path:
        """:meth:`complete`, rename ``<path>.partial`` to ``path``, then delete the writer's manifest and the
        :attr:`ledger` from it. Killed before the rename, a writer made again with the same arguments resumes (and
        may finish again).

        Returns:
            ``path``.
        """
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path}: exists; pass overwrite=True to replace it.")
        self.complete()
        _replace_folder(self.partial, self.path)
        # the writer's and the caller's records go only after the rename: a kill before it can still resume
        (self.path / _MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(self.path / self.LEDGER, ignore_errors=True)
        return self.path

    def _set_attributes(self, folder: Path, attributes: dict) -> None:
        if self.ngff == "0.5":
            attributes = {"ome": {"version": "0.5", **attributes}}
        zarr.open_group(folder, mode="r+").attrs.update(attributes)

    def _build_pyramid(self, folder: Path, levels: int, reduce) -> None:
        """Levels 1.. of the multiscale group at ``folder``, each from the one above, in tiles of a few chunks."""
        group = zarr.open_group(folder, mode="r+")
        tile = self.chunk * max(1, 1024 // self.chunk)
        for level in range(1, levels):
            source = zarr.open_array(folder / str(level - 1), mode="r")
            channels, height, width = source.shape
            shape = (channels, -(-height // 2), -(-width // 2))
            target = self._create_level(group, str(level), shape, source.dtype)
            for c in range(channels):
                for y in range(0, shape[1], tile):
                    for x in range(0, shape[2], tile):
                        block = source[c, 2 * y : 2 * (y + tile), 2 * x : 2 * (x + tile)]
                        target[c, y : y + tile, x : x + tile] = reduce(block)

    def _multiscale(self, name: str, levels: int, method: str) -> dict:
        unit = {} if self.pixel_size is None else {"unit": "micrometer"}
        axes = [
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", **unit},
            {"name": "x", "type": "space", **unit},
        ]
        size_y, size_x = self.pixel_size or (1.0, 1.0)
        datasets = [
            {
                "path": str(level),
                "coordinateTransformations": [{"type": "scale", "scale": [1.0, size_y * 2**level, size_x * 2**level]}],
            }
            for level in range(levels)
        ]
        multiscale: dict = {"name": name, "axes": axes, "datasets": datasets, "type": method}
        if self.ngff == "0.4":
            multiscale = {"version": "0.4", **multiscale}
        return multiscale

    def _omero(self) -> dict:
        dtype = np.dtype(self.image.dtype)
        end = float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0
        names = (
            list(self.image.names) if self.image.names is not None else [f"channel {c}" for c in range(self.channels)]
        )
        channels = [
            {
                "label": str(name),
                "color": "FFFFFF",
                "active": True,
                "window": {"min": 0.0, "max": end, "start": 0.0, "end": end},
            }
            for name in names
        ]
        return {"channels": channels, "rdefs": {"model": "greyscale" if self.channels == 1 else "color"}}


def _cast(block: np.ndarray, dtype, path: Path, what: str) -> np.ndarray:
    """``block`` as ``dtype``; integers must fit it and floats may not go to an integer dtype."""
    dtype = np.dtype(dtype)
    if block.dtype == dtype:
        return block
    if dtype.kind in "iu":
        if block.dtype.kind not in "iub":
            raise ValueError(f"{path}: {what} block of dtype {block.dtype} for a {dtype} store; round it first.")
        info = np.iinfo(dtype)
        if block.size and (block.min() < info.min or block.max() > info.max):
            raise ValueError(f"{path}: {what} values {block.min()}..{block.max()} do not fit the store's {dtype}.")
    return block.astype(dtype)


def _mean_2x2(block: np.ndarray) -> np.ndarray:
    """(h, w) -> (ceil(h/2), ceil(w/2)): mean of each 2x2 square (an odd last row or column pairs with itself),
    rounded to the nearest integer for integer dtypes."""
    padded = np.pad(block, ((0, block.shape[0] % 2), (0, block.shape[1] % 2)), mode="edge")
    h, w = padded.shape
    mean = padded.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3), dtype=np.float64)
    return np.rint(mean).astype(block.dtype) if block.dtype.kind in "iub" else mean.astype(block.dtype)


def _stride_2x2(block: np.ndarray) -> np.ndarray:
    """(h, w) -> (ceil(h/2), ceil(w/2)): every second pixel, starting with the first (labels keep their ids)."""
    return block[::2, ::2]


def _replace_folder(source: Path, target: Path) -> None:
    """Rename folder ``source`` to ``target``; an existing ``target`` is moved aside first and deleted after, so
    at every moment the old or the new store is complete under some name."""
    if not target.exists():
        os.replace(source, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    os.replace(source, target)
    if old.is_dir():
        shutil.rmtree(old)
    else:
        old.unlink()


# ------------------------------------------------------------------------------------------------------ cell table

CELL_DTYPE = np.dtype(
    [
        ("id", np.uint64),
        ("area", np.int64),
        ("centroid_y", np.float64),
        ("centroid_x", np.float64),
        ("bbox_y0", np.int64),
        ("bbox_x0", np.int64),
        ("bbox_y1", np.int64),
        ("bbox_x1", np.int64),
    ]
)
"""One row of the per-cell table: id, area (pixels), centroid and bounding box (``y1``, ``x1`` exclusive), all in
pixels of the slide (level 0)."""

#: columns of the per-cell table (:data:`CELL_DTYPE`'s fields); ``area_um2`` follows when the pixel size is known
CELL_COLUMNS: tuple[str, ...] = tuple(CELL_DTYPE.names or ())


def write_cell_table(
    path: PathLike, rows: Iterable[Sequence | Mapping], pixel_size: Sequence[float] | None = None
) -> Path:
    """Write the per-cell CSV at ``path`` atomically: :data:`CELL_COLUMNS`, plus ``area_um2`` when
    ``pixel_size`` (y, x micrometres) is known.

    Args:
        path: the CSV file (replaced in one rename if it exists).
        rows: per cell, the values of :data:`CELL_COLUMNS` in order, or a mapping with those keys.
        pixel_size: (y, x) micrometres, or None.

    Returns:
        ``path``.
    """
    path = Path(path)
    columns = list(CELL_COLUMNS) + (["area_um2"] if pixel_size is not None else [])
    pixel_area = None if pixel_size is None else float(pixel_size[0]) * float(pixel_size[1])
    with atomic_path(path) as partial, open(partial, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for number, row in enumerate(rows):
            values = [row[key] for key in CELL_COLUMNS] if isinstance(row, Mapping) else list(row)
            if len(values) != len(CELL_COLUMNS):
                raise ValueError(f"{path}: row {number} has {len(values)} values, expected {list(CELL_COLUMNS)}.")
            if pixel_area is not None:
                values.append(float(values[1]) * pixel_area)
            writer.writerow(values)
    return path


# ----------------------------------------------------------------------------------------------------- TIFF export


def tiff_from_zarr(
    store_path: PathLike,
    tiff_path: PathLike,
    labels: str | None = None,
    tile: int = 512,
    compression: str | None = "zlib",
    overwrite: bool = False,
    ome: bool = True,
) -> Path:
    """Write an OME-Zarr image (or one of its label images) as a tiled pyramidal OME-TIFF, tile by tile.

    The file is BigTIFF with the levels of the store's pyramid as SubIFDs of each channel's page, OME-XML with the
    channel names and the pixel size in micrometres (also as centimetre resolution tags on every level).

    Args:
        store_path: an OME-Zarr store (as :class:`OmeZarrWriter` writes).
        tiff_path: the ``.ome.tif`` to write (atomically).
        labels: name of the label image under ``labels/`` to write instead of the root image.
        tile: tile side, a multiple of 16 (256 or 512).
        compression: tifffile compression, or None.
        overwrite: replace an existing ``tiff_path``.
        ome: write OME-XML; without it a plain pyramidal BigTIFF (pixel size in the resolution tags only).

    Returns:
        ``tiff_path``.
    """
    import tifffile

    store_path, tiff_path = Path(store_path), Path(tiff_path)
    if tile % 16:
        raise ValueError(f"{tiff_path}: tile {tile}, expected a multiple of 16 (256 or 512).")
    if tiff_path.exists() and not overwrite:
        raise FileExistsError(f"{tiff_path}: exists; pass overwrite=True to replace it.")
    source = store_path if labels is None else store_path / "labels" / labels
    if labels is not None and not source.is_dir():
        raise FileNotFoundError(f"{store_path}: no label image {labels!r} under labels/.")
    first = open_slide(source)
    metadata: dict = {"axes": "CYX"}
    if first.channel_names:
        metadata["Channel"] = {"Name": list(first.channel_names)}
    if first.pixel_size is not None:
        metadata.update(PhysicalSizeY=first.pixel_size[0], PhysicalSizeYUnit="µm")
        metadata.update(PhysicalSizeX=first.pixel_size[1], PhysicalSizeXUnit="µm")
    options: dict[str, Any] = {"photometric": "minisblack", "tile": (tile, tile), "compression": compression}
    with atomic_path(tiff_path) as partial, tifffile.TiffWriter(partial, bigtiff=True, ome=ome) as tiff:
        for level in range(first.levels):
            slide = first if level == 0 else open_slide(source, level)
            resolution: dict[str, Any] = {}
            if slide.pixel_size is not None:  # pixels per centimetre, (x, y) order
                resolution = {"resolution": (1e4 / slide.pixel_size[1], 1e4 / slide.pixel_size[0]), "resolutionunit": 3}
            # plain TIFF: no shaped-series description, which would hide the SubIFD levels from tifffile's reader
            placement: dict[str, Any] = {"subifds": first.levels - 1, "metadata": metadata if ome else None}
            if level > 0:
                placement = {"subfiletype": 1}
            tiff.write(
                _tiles(slide.array, tile),
                shape=slide.array.shape,
                dtype=slide.array.dtype,
                **options,
                **resolution,
                **placement,
            )
    return tiff_path


def _tiles(array: da.Array, tile: int) -> Iterator[np.ndarray]:
    """The (tile, tile) tiles of (C, Y, X) ``array`` in TIFF order: channel, tile row, tile column; edge tiles
    are smaller (tifffile pads them)."""
    channels, height, width = array.shape
    for c in range(channels):
        for y in range(0, height, tile):
            for x in range(0, width, tile):
                yield np.ascontiguousarray(array[c, y : y + tile, x : x + tile].compute(scheduler="synchronous"))
