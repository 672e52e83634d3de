"""Instances of a whole slide stitched block by block, with no second pass over the slide (NumPy).

Each block's instances are computed on its region (the block's core grown by a halo, clipped at the slide). A cell
belongs to the block whose core holds its first pixel in raster order, and its id is ``1 + y * W + x`` of that
pixel in slide coordinates: unique over the slide, independent of the blocking, and computed alike by every block
whose region holds the whole cell. A block writes its core with these ids (owned cells and the parts of its
neighbours' cells alike) and lists only the cells it owns. A cell touching the core that reaches the region's edge
inside the slide was not seen whole, so blocks could disagree about it: that raises :class:`SeamError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from common.io.slides import CELL_DTYPE
from common.ops import as_label_array

__all__ = ["CELL_DTYPE", "BlockInstances", "SeamError", "label_dtype", "seam_crossings", "stitch_block"]


class SeamError(ValueError):
    """A cell touching a block's core reaches its region's edge inside the slide: the halo is too small."""


@dataclass(frozen=True)
class BlockInstances:
    """The stitched instances of one block.

    Attributes:
        core_labels: (h, w) :func:`label_dtype` ids of the core's pixels (every cell touching the core, owned or
            not), 0 background.
        cells: (N,) :data:`CELL_DTYPE` rows of the cells the block owns, sorted by id.
    """

    core_labels: np.ndarray
    cells: np.ndarray


def label_dtype(slide_shape: tuple[int, int]) -> np.dtype:
    """Dtype of the global ids of an (H, W) slide: uint32 when H * W < 2**32 (the largest id is H * W), else uint64."""
    height, width = (int(side) for side in slide_shape)
    return np.dtype(np.uint32 if height * width < 2**32 else np.uint64)


def _compact(labels: np.ndarray) -> tuple[np.ndarray, list[tuple[slice, slice]]]:
    """Compact relabelling of an (h, w) label image.

    Returns:
        (h, w) int64 ids 0 (background) and 1..K in the order of the input ids, and the (y, x) bounding slices
        of ids 1..K.
    """
    top = int(labels.max()) if labels.size else 0
    if top <= 2 * labels.size:  # ids dense enough for a lookup table: no sort
        present = np.bincount(labels.ravel().astype(np.int64), minlength=top + 1) > 0
        present[0] = False
        lookup = np.zeros(top + 1, np.int64)
        lookup[present] = np.arange(1, int(present.sum()) + 1)
        compact = lookup[labels]
    else:
        ids = np.unique(labels)
        compact = np.searchsorted(ids, labels).astype(np.int64) + int(ids[0] != 0)
    return compact, ndimage.find_objects(compact)


def _first_pixels(compact: np.ndarray, boxes: list[tuple[slice, slice]]) -> tuple[np.ndarray, np.ndarray]:
    """(K,) y and (K,) x of the first pixel in raster order of compact ids 1..K: the first of its top row."""
    first_y = np.array([box_y.start for box_y, _ in boxes], np.int64)
    first_x = np.array(
        [
            box_x.start + int(np.argmax(compact[box_y.start, box_x] == index))
            for index, (box_y, box_x) in enumerate(boxes, 1)
        ],
        np.int64,
    )
    return first_y, first_x


def _core_bounds(core, region_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of the core's slices within the region; ValueError unless two non-empty unit-step slices."""
    if len(core) != 2 or not all(isinstance(part, slice) for part in core):
        raise ValueError(f"core: expected two slices (y, x) within the region, got {core!r}.")
    bounds = [part.indices(side) for part, side in zip(core, region_shape)]
    if any(step != 1 or stop <= start for start, stop, step in bounds):
        raise ValueError(f"core: expected non-empty unit-step slices within the region {region_shape}, got {core!r}.")
    (y0, y1, _), (x0, x1, _) = bounds
    return y0, x0, y1, x1


def stitch_block(labels, offset: tuple[int, int], core: tuple[slice, slice], slide_shape) -> BlockInstances:
    """Global ids of a block's core and the table of the cells it owns.

    Args:
        labels: (h, w) instances of the block's region (NumPy or torch, singleton axes squeezed), any local ids,
            0 background; each cell is one connected piece.
        offset: (y0, x0) of the region in the slide.
        core: (y, x) slices of the block's core within the region.
        slide_shape: (H, W) of the slide.

    Returns:
        :class:`BlockInstances`: the core relabelled to ids ``1 + y * W + x`` of each cell's first pixel in the
        slide, and the rows of the cells whose first pixel lies in the core.

    Raises:
        SeamError: a cell touching the core reaches an edge of the region that is not the slide's edge.
        ValueError: the region or the core does not fit.
    """
    labels = as_label_array(labels, "labels")
    height, width = labels.shape
    slide_h, slide_w = (int(side) for side in slide_shape)
    oy, ox = (int(value) for value in offset)
    if oy < 0 or ox < 0 or oy + height > slide_h or ox + width > slide_w:
        raise ValueError(
            f"offset: the region {labels.shape} at ({oy}, {ox}) does not fit in the slide ({slide_h}, {slide_w})."
        )
    cy0, cx0, cy1, cx1 = _core_bounds(core, labels.shape)
    compact, boxes = _compact(labels)
    dtype = label_dtype((slide_h, slide_w))

    first_y, first_x = _first_pixels(compact, boxes)
    global_ids = np.zeros(len(boxes) + 1, np.uint64)
    global_ids[1:] = 1 + (first_y + oy).astype(np.uint64) * np.uint64(slide_w) + (first_x + ox).astype(np.uint64)
    core_compact = compact[cy0:cy1, cx0:cx1]

    inner_edges = [
        compact[0] if oy > 0 else None,
        compact[-1] if oy + height < slide_h else None,
        compact[:, 0] if ox > 0 else None,
        compact[:, -1] if ox + width < slide_w else None,
    ]
    on_edge = np.zeros(len(boxes) + 1, bool)
    for edge in inner_edges:
        if edge is not None:
            on_edge[edge] = True
    on_edge[0] = False
    touching = np.zeros(len(boxes) + 1, bool)
    touching[core_compact] = True
    cut = np.flatnonzero(on_edge & touching)
    if cut.size:
        _raise_seam(boxes[cut[0] - 1], (oy, ox), (cy0, cx0, cy1, cx1), labels.shape, (slide_h, slide_w))

    owned = np.flatnonzero((first_y >= cy0) & (first_y < cy1) & (first_x >= cx0) & (first_x < cx1)) + 1
    return BlockInstances(
        global_ids[core_compact].astype(dtype), _cell_rows(compact, boxes, owned, global_ids, (oy, ox))
    )


def _cell_rows(
    compact: np.ndarray,
    boxes: list[tuple[slice, slice]],
    owned: np.ndarray,
    global_ids: np.ndarray,
    offset: tuple[int, int],
) -> np.ndarray:
    """(N,) :data:`CELL_DTYPE` rows of the compact ids ``owned`` (ascending, so their global ids ascend too)."""
    count = int(global_ids.size)
    height, width = compact.shape
    flat = compact.ravel()
    area = np.bincount(flat, minlength=count)[owned]
    rows = np.broadcast_to(np.arange(height, dtype=np.float64)[:, None], compact.shape).ravel()
    cols = np.broadcast_to(np.arange(width, dtype=np.float64)[None, :], compact.shape).ravel()
    corners = np.array(
        [
            (boxes[index - 1][0].start, boxes[index - 1][1].start, boxes[index - 1][0].stop, boxes[index - 1][1].stop)
            for index in owned
        ],
        np.int64,
    ).reshape(-1, 4)
    cells = np.zeros(owned.size, CELL_DTYPE)
    cells["id"] = global_ids[owned]
    cells["area"] = area
    cells["centroid_y"] = np.bincount(flat, weights=rows, minlength=count)[owned] / area + offset[0]
    cells["centroid_x"] = np.bincount(flat, weights=cols, minlength=count)[owned] / area + offset[1]
    for column, name in enumerate(("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1")):
        cells[name] = corners[:, column] + offset[column % 2]
    return cells


def _raise_seam(box, offset, core_bounds, region_shape, slide_shape) -> None:
    """Raise :class:`SeamError` for the cell within ``box`` (region slices), naming the block, the cell and the halo."""
    oy, ox = offset
    cy0, cx0, cy1, cx1 = core_bounds
    halo = min(
        margin
        for margin, inside in (
            (cy0, oy > 0),
            (region_shape[0] - cy1, oy + region_shape[0] < slide_shape[0]),
            (cx0, ox > 0),
            (region_shape[1] - cx1, ox + region_shape[1] < slide_shape[1]),
        )
        if inside
    )
    box_y, box_x = box
    raise SeamError(
        f"block with core at ({oy + cy0}, {ox + cx0}) (region at ({oy}, {ox}), shape {region_shape}): the cell at "
        f"({oy + box_y.start}, {ox + box_x.start})-({oy + box_y.stop}, {ox + box_x.stop}) of the slide touches the "
        f"core and reaches the region's edge inside the slide, so it spans more than the halo of {halo} pixels "
        f"(at least {box_y.stop - box_y.start} x {box_x.stop - box_x.start} pixels seen): raise the halo above the "
        "largest cell's size."
    )


def seam_crossings(labels, block_size) -> int:
    """Number of cells of an (H, W) label image whose pixels lie in more than one block of the grid.

    Args:
        labels: (H, W) instances (NumPy or torch), 0 background; the grid starts at pixel (0, 0).
        block_size: block side, or (y, x) block sides, in pixels.
    """
    labels = as_label_array(labels, "labels")
    sides = np.asarray(block_size).ravel()
    if sides.size not in (1, 2) or not np.issubdtype(sides.dtype, np.integer) or sides.min() < 1:
        raise ValueError(f"block_size: expected a positive integer or (y, x) pair of them, got {block_size!r}.")
    size_y, size_x = (int(side) for side in np.broadcast_to(sides, (2,)))
    crossing = 0
    for box_y, box_x in _compact(labels)[1]:
        rows = {box_y.start // size_y, (box_y.stop - 1) // size_y}
        cols = {box_x.start // size_x, (box_x.stop - 1) // size_x}
        crossing += len(rows) > 1 or len(cols) > 1
    return crossing
