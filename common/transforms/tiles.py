"""Cutting an image into non-overlapping tiles and putting tiles back together, exactly.

Tiles are numbered row by row: tile ``k`` of a ``(rows, columns)`` grid covers rows ``(k // columns) * th``
to ``+ th`` and columns ``(k % columns) * tw`` to ``+ tw``. Both directions are pure reshapes, so
``merge_tiles(tile_image(x, size), grid)`` returns ``x`` unchanged (NumPy arrays and tensors alike, on any
device). For predicting a whole image tile by tile, MONAI's ``SlidingWindowInferer(roi_size=tile, overlap=0)``
does the same cut and merge around a network.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.transforms.traits import MultiSampleTrait
from monai.utils import TransformBackends

from .base import ArrayMapTransform

__all__ = ["tile_grid_shape", "tile_image", "merge_tiles", "Tile", "Tiled", "MergeTiles", "MergeTilesd"]


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    sides = [size, size] if isinstance(size, (int, float, np.integer, np.floating)) else size
    pair = tuple(int(s) for s in sides)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name}: expected a positive int or a (y, x) pair, got {size!r}.")
    return pair[0], pair[1]


def _permute(x, order: Sequence[int]):
    return x.transpose(order) if isinstance(x, np.ndarray) else x.permute(*order)


def tile_grid_shape(spatial_shape: Sequence[int], tile_size: int | Sequence[int]) -> tuple[int, int]:
    """(rows, columns) of tiles covering an image of (H, W) ``spatial_shape`` exactly.

    Raises:
        ValueError: H or W is not a multiple of the tile size.
    """
    (height, width), (tile_h, tile_w) = tuple(int(s) for s in spatial_shape), _pair(tile_size, "tile_size")
    if height % tile_h or width % tile_w:
        raise ValueError(
            f"an image of (H, W) = ({height}, {width}) does not split into ({tile_h}, {tile_w}) tiles without "
            "overlap; crop it to a multiple of the tile size first."
        )
    return height // tile_h, width // tile_w


def tile_image(image, tile_size: int | Sequence[int]):
    """(C, H, W) image -> (N, C, th, tw) tiles in row-major order, N = (H / th) * (W / tw).

    Args:
        image: NumPy array or tensor whose H and W are multiples of the tile size.
        tile_size: th = tw, or (th, tw).
    """
    if image.ndim != 3:
        raise ValueError(f"image: expected a channel-first (C, H, W) array, got shape {tuple(image.shape)}.")
    channels, height, width = image.shape
    rows, columns = tile_grid_shape((height, width), tile_size)
    tile_h, tile_w = height // rows, width // columns
    grid = image.reshape(channels, rows, tile_h, columns, tile_w)
    return _permute(grid, (1, 3, 0, 2, 4)).reshape(rows * columns, channels, tile_h, tile_w)


def merge_tiles(tiles, grid: Sequence[int]):
    """(N, C, th, tw) tiles in row-major order -> the (C, rows * th, columns * tw) image they cut.

    Args:
        tiles: NumPy array or tensor, N = rows * columns.
        grid: (rows, columns).
    """
    rows, columns = _pair(grid, "grid")
    if tiles.ndim != 4 or tiles.shape[0] != rows * columns:
        raise ValueError(
            f"tiles: expected (N, C, th, tw) with N = {rows} x {columns} = {rows * columns}, "
            f"got shape {tuple(tiles.shape)}."
        )
    _, channels, tile_h, tile_w = tiles.shape
    grid_view = tiles.reshape(rows, columns, channels, tile_h, tile_w)
    return _permute(grid_view, (2, 0, 3, 1, 4)).reshape(channels, rows * tile_h, columns * tile_w)


class Tile(Transform):
    """(C, H, W) -> (N, C, th, tw) non-overlapping tiles, row-major; see :func:`tile_image`."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, tile_size: int | Sequence[int]) -> None:
        self.tile_size = _pair(tile_size, "tile_size")

    def __call__(self, image: NdarrayOrTensor) -> NdarrayOrTensor:
        return tile_image(image, self.tile_size)


class Tiled(ArrayMapTransform, MultiSampleTrait):
    """Cut the images under ``keys`` into tiles and return one dictionary per tile (MONAI's multi-sample form).

    Every key is cut on the same grid, so tile ``k`` of an image and of its target cover the same pixels;
    other entries are shared by all tiles. Placed in a cached preprocessing chain, the tiles of each image are
    computed once.

    Args:
        keys: keys of (C, H, W) images of one spatial shape, a multiple of the tile size.
        tile_size: th = tw, or (th, tw).
        allow_missing_keys: do not raise for absent keys.

    Returns:
        ``N`` dictionaries, entry ``key`` of dictionary ``k`` holding tile ``k`` as (C, th, tw).
    """

    backend = Tile.backend

    def __init__(self, keys: KeysCollection, tile_size: int | Sequence[int], allow_missing_keys: bool = False) -> None:
        super().__init__(keys, Tile(tile_size), allow_missing_keys=allow_missing_keys)

    def __call__(  # type: ignore[override]
        self, data: Mapping[Hashable, NdarrayOrTensor]
    ) -> list[dict[Hashable, NdarrayOrTensor]]:
        keys = list(self.key_iterator(data))
        if not keys:
            return [dict(data)]
        shapes = {key: tuple(data[key].shape[1:]) for key in keys}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"keys {keys}: expected one spatial shape to tile, got {shapes}.")
        tiles = {key: self.apply(key, data[key]) for key in keys}
        count = len(tiles[keys[0]])
        return [{**data, **{key: tiles[key][index] for key in keys}} for index in range(count)]


class MergeTiles(Transform):
    """(N, C, th, tw) row-major tiles -> (C, rows * th, columns * tw); see :func:`merge_tiles`.

    Args:
        grid: (rows, columns) of the tiles.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, grid: Sequence[int]) -> None:
        self.grid = _pair(grid, "grid")

    def __call__(self, tiles: NdarrayOrTensor) -> NdarrayOrTensor:
        return merge_tiles(tiles, self.grid)


class MergeTilesd(ArrayMapTransform):
    """Dictionary version of :class:`MergeTiles`: each key's stacked (N, C, th, tw) tiles become one image."""

    backend = MergeTiles.backend

    def __init__(
        self,
        keys: KeysCollection,
        grid: Sequence[int],
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, MergeTiles(grid), output_keys, allow_missing_keys)
