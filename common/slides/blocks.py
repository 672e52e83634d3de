"""The block grid of a slide: cores that tile it, and the regions around them that a block is computed on."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Block", "block_grid"]


@dataclass(frozen=True)
class Block:
    """Block ``index`` (row, column) of the grid; its core is rows ``y0:y1`` and columns ``x0:x1`` of the slide."""

    index: tuple[int, int]
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def name(self) -> str:
        return f"{self.index[0]}_{self.index[1]}"

    def grown(self, margin: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1): the core grown by ``margin`` pixels on every side, clipped to the slide's ``shape``."""
        return (
            max(self.y0 - margin, 0),
            min(self.y1 + margin, shape[0]),
            max(self.x0 - margin, 0),
            min(self.x1 + margin, shape[1]),
        )


def block_grid(shape: tuple[int, int], block_size: int) -> list[Block]:
    """Blocks of ``block_size`` (the last row and column shorter) covering a slide of ``shape`` (H, W), row by row."""
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}.")
    height, width = shape
    return [
        Block((i, j), y, min(y + block_size, height), x, min(x + block_size, width))
        for i, y in enumerate(range(0, height, block_size))
        for j, x in enumerate(range(0, width, block_size))
    ]
