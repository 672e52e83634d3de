"""COCO polygon annotations (the LIVECell format), read and rasterised without pycocotools.

Reading. :func:`load_coco` accepts ``images`` and ``annotations`` stored either as lists (the COCO standard) or
as objects keyed by id (the official LIVECell files, on which ``pycocotools.coco.COCO`` fails) and indexes the
annotations by image file name.

Rasterisation rule (:func:`polygons_to_mask`), chosen to give the masks ``pycocotools`` would give:

* pixel ``(r, c)`` is the unit square ``[c, c + 1) x [r, r + 1)`` in COCO coordinates, and it is foreground
  when its centre ``(c + 0.5, r + 0.5)`` lies inside the polygon, up to a 1/5-pixel snapping of the
  vertices: this implementation follows ``pycocotools``' ``rleFrPoly`` scan step by step (vectorised), so
  ties on edges fall the same way (checked against pycocotools on random polygons; the tests keep golden
  masks). The axis-aligned polygon ``(x0, y0)-(x1, y0)-(x1, y1)-(x0, y1)`` with integer corners covers
  ``(x1 - x0) * (y1 - y0)`` pixels.
* each polygon part is filled with the even-odd rule (a self-intersecting part leaves its doubly wound
  region empty, as in ``pycocotools``);
* the parts of one annotation are unioned (``pycocotools``' ``merge``). COCO polygons cannot express a hole:
  a part lying inside another adds nothing and never cuts out its region;
* coordinates outside the image are clipped to it; a part touching the border keeps its border pixels;
* a part with fewer than 3 vertices encloses no area and is skipped (``pycocotools`` would read a 2-vertex
  first part as a box: such data is malformed and is not imitated). A part with an odd number of
  coordinates or non-finite values raises :class:`DataError`.

In the transform chain, :class:`CocoPolygonsToMaskd` turns the ``polygons`` a LIVECell datalist item carries
into the ``(1, H, W)`` mask, so a bundle trains on the dataset as distributed, with no preparation step.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, ensure_tuple_rep

from .errors import DataError, LayoutError

__all__ = [
    "CocoIndex",
    "load_coco",
    "polygons_to_mask",
    "polygons_to_labels",
    "CocoPolygonsToMask",
    "CocoPolygonsToMaskd",
]

PathLike = Union[str, os.PathLike]
#: one annotation's ``segmentation``: a list of parts, each a flat list ``[x0, y0, x1, y1, ...]``.
Segmentation = Sequence[Sequence[float]]

#: sub-pixel grid pycocotools snaps polygon vertices to (``rleFrPoly``'s ``scale``).
_UPSAMPLING = 5


# ----------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class CocoIndex:
    """A COCO annotation file indexed by image file name.

    Attributes:
        path: the JSON file.
        images: file name -> image record (``id``, ``file_name``, ``height``, ``width`` and any other fields).
        annotations: file name -> that image's annotation records, in ascending annotation id; images without
            annotations have no entry.
        categories: the ``categories`` records (empty when the file has none).
    """

    path: str
    images: dict[str, dict]
    annotations: dict[str, list[dict]]
    categories: list[dict] = field(default_factory=list)

    def segmentations(self, file_name: str) -> list:
        """The ``segmentation`` of every annotation of ``file_name`` (an empty list when it has none)."""
        return [annotation["segmentation"] for annotation in self.annotations.get(file_name, [])]


def load_coco(path: PathLike) -> CocoIndex:
    """Read a COCO annotation file whose ``images``/``annotations`` are lists or objects keyed by id.

    Raises:
        LayoutError: the file does not exist.
        DataError: the file is not JSON, or lacks a key an image (``id``, ``file_name``, ``height``, ``width``)
            or an annotation (``image_id``, ``segmentation``) needs, or an annotation names an unknown image.
    """
    path = Path(path)
    content = _read_json(path)
    images = _records(content, "images", ("id", "file_name", "height", "width"), path)
    annotations = _records(content, "annotations", ("image_id", "segmentation"), path)
    file_names = _file_names_by_id(images, path)
    by_file: dict[str, list[dict]] = defaultdict(list)
    for annotation in _in_id_order(annotations):
        if annotation["image_id"] not in file_names:
            raise DataError(
                f"{path}: annotation {annotation.get('id', '?')} refers to image_id {annotation['image_id']!r}, "
                "which no record of 'images' has."
            )
        by_file[file_names[annotation["image_id"]]].append(annotation)
    return CocoIndex(
        path=str(path),
        images={image["file_name"]: image for image in images},
        annotations=dict(by_file),
        categories=list(content.get("categories") or []),
    )


def _read_json(path: Path) -> dict:
    """The top-level object of a JSON file."""
    if not path.is_file():
        raise LayoutError(f"{path}: COCO annotation file not found.")
    try:
        with open(path, encoding="utf-8") as stream:
            content = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a valid JSON file ({error}).") from error
    if not isinstance(content, dict):
        kind = type(content).__name__
        raise DataError(f"{path}: expected a JSON object with 'images' and 'annotations', got a {kind}.")
    return content


def _records(content: dict, key: str, required: Sequence[str], path: Path) -> list[dict]:
    """The records under ``key``, stored as a list or as an object keyed by id, each checked for ``required``."""
    if key not in content:
        raise DataError(f"{path}: missing key {key!r}; expected a COCO file with 'images' and 'annotations'.")
    stored = content[key]
    if isinstance(stored, dict):
        records = list(stored.values())
    elif isinstance(stored, list):
        records = stored
    else:
        raise DataError(f"{path}: {key!r} must be a list or an object keyed by id, got {type(stored).__name__}.")
    for position, record in enumerate(records):
        missing = [name for name in required if not isinstance(record, dict) or name not in record]
        if missing:
            raise DataError(f"{path}: record {position} of {key!r} lacks {', '.join(map(repr, missing))}.")
    return records


def _file_names_by_id(images: list[dict], path: Path) -> dict:
    """Image id -> file name, refusing a file name or id that two image records share."""
    file_names: dict = {}
    seen: set = set()
    for image in images:
        if image["id"] in file_names or image["file_name"] in seen:
            raise DataError(f"{path}: two image records share id {image['id']!r} or file name {image['file_name']!r}.")
        file_names[image["id"]] = image["file_name"]
        seen.add(image["file_name"])
    return file_names


def _in_id_order(annotations: list[dict]) -> list[dict]:
    """Annotations sorted by ``id`` when every one has an id, otherwise as stored."""
    if all("id" in annotation for annotation in annotations):
        try:
            return sorted(annotations, key=lambda annotation: annotation["id"])
        except TypeError:  # ids of mixed types: keep the stored order
            pass
    return list(annotations)


# ------------------------------------------------------------------------------------------ rasterising


def polygons_to_mask(segmentation: Segmentation, height: int, width: int) -> np.ndarray:
    """Rasterise the polygon parts of one segmentation, unioned (see the module's rule).

    Args:
        segmentation: list of parts, each a flat ``[x0, y0, x1, y1, ...]`` sequence (or a ``(K, 2)`` array) in
            pixel units, x along columns and y along rows. Parts of several annotations may be concatenated to
            get their union.
        height, width: size of the image.

    Returns:
        ``(H, W)`` bool mask.
    """
    return _union_mask(_polygon_parts(segmentation, "segmentation"), height, width)


def polygons_to_labels(segmentations: Sequence[Segmentation], height: int, width: int) -> np.ndarray:
    """Instance labels of several annotations: annotation ``i`` (from 0) gets label ``i + 1``.

    Args:
        segmentations: one segmentation (list of polygon parts) per annotation.
        height, width: size of the image.

    Returns:
        ``(H, W)`` int32 labels, 0 for background; where annotations overlap, the later one wins.
    """
    _check_size(height, width)
    parts, owners = [], []
    for index, segmentation in enumerate(segmentations):
        annotation_parts = _polygon_parts(segmentation, f"segmentations[{index}]")
        parts += annotation_parts
        owners += [index + 1] * len(annotation_parts)
    starts, stops, part_of_run = _runs(parts, height, width)
    lengths = stops - starts
    labels = np.zeros(height * width, dtype=np.int32)
    np.maximum.at(labels, _run_indices(starts, lengths), np.repeat(np.asarray(owners, np.int32)[part_of_run], lengths))
    return _from_column_major(labels, height, width)


def _union_mask(parts: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool union of polygons given as ``(K_i, 2)`` float64 (x, y) vertices."""
    _check_size(height, width)
    starts, stops, _ = _runs(parts, height, width)
    size = height * width
    coverage = np.bincount(starts, minlength=size + 1) - np.bincount(stops, minlength=size + 1)
    return _from_column_major(np.cumsum(coverage[:size]) > 0, height, width)


def _check_size(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise DataError(f"image size must be positive, got height {height} and width {width}.")


def _polygon_parts(segmentation: Segmentation, name: str) -> list[np.ndarray]:
    """Each part of ``segmentation`` as a ``(K, 2)`` float64 array of (x, y) vertices, K >= 3."""
    if isinstance(segmentation, Mapping):
        raise DataError(f"{name}: run-length (RLE) segmentations are not supported; expected a list of polygons.")
    if isinstance(segmentation, np.ndarray) and segmentation.ndim == 2:
        shape = segmentation.shape
        raise DataError(f"{name}: expected a list of polygon parts, got one {shape} array; wrap it in a list.")
    if len(segmentation) and np.isscalar(segmentation[0]):
        raise DataError(f"{name}: expected a list of polygons (lists of x, y values), got a flat list of numbers.")
    parts = []
    for index, part in enumerate(segmentation):
        coordinates = np.asarray(part, dtype=np.float64).ravel()
        if coordinates.size % 2:
            raise DataError(f"{name}[{index}]: odd number of coordinates ({coordinates.size}); expected x, y pairs.")
        if not np.isfinite(coordinates).all():
            raise DataError(f"{name}[{index}]: coordinates must be finite numbers.")
        if coordinates.size >= 6:
            parts.append(coordinates.reshape(-1, 2))
    return parts


def _runs(parts: list[np.ndarray], height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Foreground runs of every part, each filled with the even-odd rule, all parts processed at once.

    Returns:
        ``starts``, ``stops`` (column-major indices ``x * H + y``, run = ``[start, stop)``) and the part each run
        belongs to, as int64 arrays of one length.
    """
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    u, v, part_of_point = _boundary_walk(parts)
    toggles, part_of_toggle = _column_toggles(u, v, part_of_point, height, width)
    # a part with an odd number of toggles stays filled to the end of the image, as in pycocotools
    odd = np.flatnonzero(np.bincount(part_of_toggle, minlength=len(parts)) % 2)
    toggles = np.concatenate([toggles, np.full(odd.size, height * width)])
    part_of_toggle = np.concatenate([part_of_toggle, odd])
    order = np.lexsort((toggles, part_of_toggle))
    toggles, part_of_toggle = toggles[order], part_of_toggle[order]
    return toggles[0::2], toggles[1::2], part_of_toggle[0::2]


def _boundary_walk(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid points visited along every edge of every closed polygon, on the 1/5-pixel grid.

    Args:
        parts: ``(K_i, 2)`` float64 (x, y) vertices of each polygon.

    Returns:
        ``u`` (x), ``v`` (y) int64 and the part of each point: for each edge, one point per step along its longer
        axis, both ends included, each edge walked from its first vertex to its second (``rleFrPoly``'s first
        loop).
    """
    vertices = np.concatenate(parts)
    counts = np.array([len(part) for part in parts])
    first = np.cumsum(counts) - counts
    following = np.arange(len(vertices)) + 1
    following[first + counts - 1] = first  # the last vertex of a part closes it
    x = np.trunc(_UPSAMPLING * vertices[:, 0] + 0.5).astype(np.int64)
    y = np.trunc(_UPSAMPLING * vertices[:, 1] + 0.5).astype(np.int64)
    x_end, y_end = x[following], y[following]
    dx, dy = np.abs(x_end - x), np.abs(y_end - y)
    along_x = dx >= dy
    flip = np.where(along_x, x > x_end, y > y_end)  # step from the low end, then read the points backwards
    xs, ys = np.where(flip, x_end, x), np.where(flip, y_end, y)
    xe, ye = np.where(flip, x, x_end), np.where(flip, y, y_end)
    steps = np.maximum(dx, dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.nan_to_num(np.where(along_x, (ye - ys) / dx, (xe - xs) / dy))  # zero-length edge: one point

    edge = np.repeat(np.arange(len(vertices)), steps + 1)
    step = np.arange(edge.size) - np.repeat(np.cumsum(steps + 1) - (steps + 1), steps + 1)
    t = np.where(flip[edge], steps[edge] - step, step)
    across = np.trunc(np.where(along_x[edge], ys[edge], xs[edge]) + slope[edge] * t + 0.5).astype(np.int64)
    u = np.where(along_x[edge], xs[edge] + t, across)
    v = np.where(along_x[edge], across, ys[edge] + t)
    return u, v, np.repeat(np.arange(len(parts)), counts)[edge]


def _column_toggles(
    u: np.ndarray, v: np.ndarray, part: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Column-major indices ``x * H + y`` where the scan down pixel column x enters or leaves a polygon.

    Each step of a part's walk that crosses the centre line of a pixel column gives the first row whose centre
    lies below the boundary there (``rleFrPoly``'s second loop); columns outside the image are dropped, rows
    are clipped to ``[0, H]``. Returns the indices and the part of each.
    """
    moved = np.flatnonzero((u[1:] != u[:-1]) & (part[1:] == part[:-1])) + 1
    u_now, u_before = u[moved], u[moved - 1]
    column = np.where(u_now < u_before, u_now, u_now - 1).astype(np.float64)
    column = (column + 0.5) / _UPSAMPLING - 0.5
    inside = (np.floor(column) == column) & (column >= 0) & (column <= width - 1)
    row = np.minimum(v[moved], v[moved - 1]).astype(np.float64)
    row = np.ceil(np.clip((row + 0.5) / _UPSAMPLING - 0.5, 0, height))
    index = column[inside].astype(np.int64) * height + row[inside].astype(np.int64)
    return index, part[moved][inside]


def _run_indices(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Every index covered by the runs ``[start, start + length)``, concatenated."""
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(lengths.sum()) + offsets


def _from_column_major(flat: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(H * W,)`` column-major values -> ``(H, W)`` C-contiguous array."""
    return np.ascontiguousarray(flat.reshape(width, height).T)


# ---------------------------------------------------------------------------------------- MONAI transforms


class CocoPolygonsToMask(Transform):
    """COCO polygons of several annotations -> ``(1, H, W)`` foreground mask (1 inside any annotation, else 0).

    The rasterisation follows :func:`polygons_to_mask`; the output is a NumPy array of ``dtype`` (uint8 by
    default), spatial order y, x like the images :class:`common.io.images.MicroscopyReader` returns.
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, dtype: np.dtype | type | str = np.uint8) -> None:
        self.dtype = np.dtype(dtype)

    def __call__(  # type: ignore[override]  # MONAI's Transform.__call__(data) takes one argument
        self, segmentations: Sequence[Segmentation], height: int, width: int
    ) -> np.ndarray:
        """Mask of ``segmentations`` (one list of polygon parts per annotation) on a ``height`` x ``width`` image."""
        parts = [
            part
            for index, segmentation in enumerate(segmentations)
            for part in _polygon_parts(segmentation, f"polygons[{index}]")
        ]
        return _union_mask(parts, int(height), int(width))[None].astype(self.dtype)


class CocoPolygonsToMaskd(MapTransform):
    """Dictionary wrapper of :class:`CocoPolygonsToMask` for LIVECell datalist items.

    Reads the annotations' polygons at each key of ``keys`` (``item["polygons"]``: one segmentation per
    annotation) and the image size at ``height_key``/``width_key``, and stores the ``(1, H, W)`` mask at the
    matching key of ``mask_keys``. By default the mask replaces the polygons; when it goes to another key (e.g.
    ``mask_keys="label"``) the polygons are removed all the same unless ``keep_polygons`` is true, because
    DataLoader cannot batch their ragged lists. The datalist item itself is not modified.
    """

    backend = CocoPolygonsToMask.backend

    def __init__(
        self,
        keys: KeysCollection = "polygons",
        mask_keys: KeysCollection | None = None,
        height_key: str = "height",
        width_key: str = "width",
        dtype: np.dtype | type | str = np.uint8,
        keep_polygons: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mask_keys = ensure_tuple_rep(mask_keys, len(self.keys)) if mask_keys is not None else self.keys
        self.height_key, self.width_key = height_key, width_key
        self.keep_polygons = keep_polygons
        self.converter = CocoPolygonsToMask(dtype)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key, mask_key in self.key_iterator(d, self.mask_keys):
            height, width = (self._size(d, name) for name in (self.height_key, self.width_key))
            mask = self.converter(d[key], height, width)
            if not self.keep_polygons:
                del d[key]
            d[mask_key] = mask
        return d

    @staticmethod
    def _size(d: dict, name: str) -> int:
        """The image size stored at ``name``, as an int."""
        if name not in d:
            raise KeyError(f"{name}: missing from the item; CocoPolygonsToMaskd needs the image height and width.")
        return int(d[name])
