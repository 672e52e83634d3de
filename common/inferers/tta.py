"""Test-time augmentation over the dihedral group of the image plane."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product
from typing import Any, Callable

import torch
from monai.inferers import Inferer

from .region import region_of, with_region

__all__ = ["DihedralTTAInferer", "dihedral_elements"]

GROUPS = ("d4", "flips")


def dihedral_elements(group: str = "d4") -> list[tuple[bool, bool, bool]]:
    """The group's elements as ``(transpose, flip_y, flip_x)``: transpose first, then the flips.

    ``"d4"`` gives the 8 symmetries of the square (4 rotations, each with and without a mirror), ``"flips"``
    the 4 axis flips (identity, vertical, horizontal, both), which keep a non-square image's shape.
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}.")
    transposes = (False, True) if group == "d4" else (False,)
    return [(t, fy, fx) for t, fy, fx in product(transposes, (False, True), (False, True))]


def _flip_dims(flip_y: bool, flip_x: bool) -> list[int]:
    return [dim for dim, flip in ((-2, flip_y), (-1, flip_x)) if flip]


def apply_element(image: torch.Tensor, element: tuple[bool, bool, bool]) -> torch.Tensor:
    """``image`` (..., H, W) moved by ``element``: transposed, then flipped. A block of a slide (region meta data,
    ``common.inferers.region``) is told where it lies in the moved slide."""
    transpose, flip_y, flip_x = element
    moved = image.transpose(-2, -1) if transpose else image
    dims = _flip_dims(flip_y, flip_x)
    moved = torch.flip(moved, dims) if dims else moved
    region = region_of(image)
    if region is not None:  # a block of a slide: where the moved block lies in the moved slide
        moved = with_region(moved, region.moved(element, (image.shape[-2], image.shape[-1])))
    return moved


def invert_element(
    output: torch.Tensor, element: tuple[bool, bool, bool], vector_channels: Sequence[int] | None = None
) -> torch.Tensor:
    """Bring a (B, C, H', W') prediction made on a moved image back to the original frame.

    The pixels are flipped back, then transposed back. With ``vector_channels=(i, j)``, channels i and j are the
    (y, x) components of a vector field: a flip negates its axis' component, a transposition swaps the two.
    """
    transpose, flip_y, flip_x = element
    dims = _flip_dims(flip_y, flip_x)
    restored = torch.flip(output, dims) if dims else output
    restored = restored.transpose(-2, -1) if transpose else restored
    if vector_channels is None:
        return restored
    y, x = vector_channels
    component_y, component_x = restored[:, y], restored[:, x]
    if flip_y:
        component_y = -component_y
    if flip_x:
        component_x = -component_x
    if transpose:
        component_y, component_x = component_x, component_y
    restored = restored.clone()
    restored[:, y], restored[:, x] = component_y, component_x
    return restored


class DihedralTTAInferer(Inferer):
    """Mean of the predictions on every dihedral transform of the input, each transformed back.

    Args:
        inferer: how each transformed image is predicted (for example a ``SlidingWindowInferer``); ``None``
            calls the network on the whole image.
        group: ``"d4"`` (8 transforms: rotations by 90 degrees and mirrors) or ``"flips"`` (4 axis flips).
        vector_channels: ``(i, j)``, the output channels holding the (y, x) components of a vector field
            (cellpose-style flows); these are sign-corrected and swapped as the pixels are moved back.

    Input ``(B, C, H, W)``; output ``(B, C', H, W)`` as the network's, on the input's device. With ``"d4"`` the
    network also sees ``(B, C, W, H)`` images.
    """

    def __init__(
        self, inferer: Inferer | None = None, group: str = "d4", vector_channels: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.inferer = inferer
        self.elements = dihedral_elements(group)
        if vector_channels is not None and len(vector_channels) != 2:
            raise ValueError(f"vector_channels names the (y, x) channels, got {vector_channels!r}.")
        self.vector_channels = None if vector_channels is None else tuple(int(c) for c in vector_channels)

    def predict(self, image: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        output = self.inferer(image, network, *args, **kwargs) if self.inferer else network(image, *args, **kwargs)
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"DihedralTTAInferer averages tensors; the network returned {type(output).__name__}.")
        return output

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        if inputs.ndim != 4:
            raise ValueError(f"DihedralTTAInferer expects a (B, C, H, W) batch, got shape {tuple(inputs.shape)}.")
        total = None
        for element in self.elements:
            prediction = self.predict(apply_element(inputs, element), network, *args, **kwargs)
            restored = invert_element(prediction, element, self.vector_channels)
            total = restored if total is None else total + restored
        assert total is not None  # the group has elements
        return total / len(self.elements)
