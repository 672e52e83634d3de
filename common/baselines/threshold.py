"""The adaptive-threshold baseline as a parameter-free network, so that it runs through the same evaluator."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from common.postprocess.morphology import binary_dilation, binary_erosion
from common.postprocess.thresholds import THRESHOLD_METHODS, threshold_images

__all__ = ["ThresholdBaseline"]


class ThresholdBaseline(nn.Module):
    """Foreground masks of grey images by global automatic thresholds, each with and/or without a closing.

    Output channel ``i`` is the mask of :attr:`names` ``[i]``: for every method of ``methods`` (in order) one
    channel per entry of ``closing``: the thresholded image as it is (``False``) and after a dilation by ITK's
    ball of ``dilate_radius`` followed by an erosion by the ball of ``erode_radius`` (``True``; the published
    closing uses 9 and 11, so it also shrinks objects by two pixels). Masks equal SimpleITK's filters' (see
    :mod:`common.postprocess.thresholds`).

    Args:
        methods: names from :data:`common.postprocess.thresholds.THRESHOLD_METHODS`.
        closing: which of the plain (False) and closed (True) masks to output, per method.
        dilate_radius, erode_radius: disk radii of the closing, in pixels.
        bins: histogram bins; None for SimpleITK's default of each method (128 Otsu and Huang, 256 triangle and
            maximum entropy).
        value_range: fixed histogram range; ``(-0.5, 255.5)`` is SimpleITK's for 8-bit images (give raw grey
            values then); None for each image's own range (SimpleITK's for other pixel types).
        foreground: ``"dark"`` (pixels at or below the threshold, SimpleITK's default) or ``"bright"``.

    Input ``(B, 1, H, W)`` images; output ``(B, len(methods) * len(closing), H, W)`` float32 in {0, 1}.
    """

    def __init__(
        self,
        methods: Sequence[str] = ("otsu", "triangle", "huang", "max_entropy"),
        closing: Sequence[bool] = (False, True),
        dilate_radius: int = 9,
        erode_radius: int = 11,
        bins: int | None = None,
        value_range: Sequence[float] | None = None,
        foreground: str = "dark",
    ) -> None:
        super().__init__()
        unknown = [method for method in methods if method not in THRESHOLD_METHODS]
        if unknown or not methods:
            raise ValueError(f"methods: expected names from {sorted(THRESHOLD_METHODS)}, got {list(methods)}.")
        if not closing:
            raise ValueError("closing: expected at least one of False, True.")
        self.methods, self.closing = tuple(methods), tuple(bool(c) for c in closing)
        self.dilate_radius, self.erode_radius = dilate_radius, erode_radius
        self.bins, self.foreground = bins, foreground
        self.value_range = None if value_range is None else tuple(value_range)

    @property
    def names(self) -> list[str]:
        """Name of each output channel: ``<method>`` or ``<method>+closing``."""
        return [f"{method}+closing" if closed else method for method in self.methods for closed in self.closing]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"images: expected (B, 1, H, W) grey images, got shape {tuple(images.shape)}.")
        masks = []
        for method in self.methods:
            mask = threshold_images(images, method, self.bins, self.foreground, self.value_range)
            for closed in self.closing:
                masks.append(
                    binary_erosion(binary_dilation(mask, self.dilate_radius), self.erode_radius) if closed else mask
                )
        return torch.cat(masks, dim=1).float()
