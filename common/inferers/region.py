"""Sliding-window inference of one region of a larger image, with the windows the whole image would use.

MONAI's :class:`~monai.inferers.SlidingWindowInferer` places its windows by the size of the image it is given, so
running it on a block of a slide places them differently than on the whole slide, and a network's output depends
on where a pixel sits in its window. :class:`RegionSlidingWindowInferer` reads where the block lies in the slide
(:class:`SlideRegion`, carried in the input's meta data under ``"slide_region"``) and runs only the windows of the
*whole slide's* grid (MONAI's own ``_get_scan_interval`` and ``dense_patch_slices``) that lie inside the block, with
the same blending weights. A pixel whose windows all lie inside the block is therefore predicted exactly as the
in-memory run predicts it; that holds for every pixel at least ``roi_size - 1`` pixels inside the block's edges
(or at the slide's edge). Without region meta data it is MONAI's inferer, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from monai.data import MetaTensor
from monai.data.utils import compute_importance_map, dense_patch_slices
from monai.inferers import SlidingWindowInferer
from monai.inferers.utils import _get_scan_interval
from monai.utils import fall_back_tuple

__all__ = ["SlideRegion", "RegionSlidingWindowInferer", "with_region", "region_of", "REGION_KEY"]

#: meta data key of the region a tensor holds
REGION_KEY = "slide_region"


@dataclass(frozen=True)
class SlideRegion:
    """Where a (..., h, w) tensor lies in a slide of ``slide_shape`` (H, W): its first pixel is ``offset`` (y, x)."""

    offset: tuple[int, int]
    slide_shape: tuple[int, int]

    def moved(self, element: tuple[bool, bool, bool], size: tuple[int, int]) -> SlideRegion:
        """The region of the tensor (of spatial ``size``) after a dihedral ``element`` (transpose, flip_y, flip_x)
        moved the whole slide: transposed first, then flipped, as ``common.inferers.tta.apply_element`` does."""
        transpose, flip_y, flip_x = element
        (y0, x0), (height, width), (h, w) = self.offset, self.slide_shape, size
        if transpose:
            y0, x0, height, width, h, w = x0, y0, width, height, w, h
        if flip_y:
            y0 = height - (y0 + h)
        if flip_x:
            x0 = width - (x0 + w)
        return SlideRegion((y0, x0), (height, width))


def with_region(image: torch.Tensor, region: SlideRegion) -> MetaTensor:
    """``image`` as a MetaTensor whose meta data say it is ``region`` of a slide."""
    tensor = image if isinstance(image, MetaTensor) else MetaTensor(image)
    tensor.meta = {**tensor.meta, REGION_KEY: region}
    return tensor


def region_of(image: Any) -> SlideRegion | None:
    """The :class:`SlideRegion` ``image`` carries, or None."""
    return image.meta.get(REGION_KEY) if isinstance(image, MetaTensor) else None


class RegionSlidingWindowInferer(SlidingWindowInferer):
    """MONAI's sliding window, restricted to the whole slide's windows inside the input region (see module doc).

    Input (B, C, h, w) with region meta data; output (B, C', h, w): pixels covered by no window inside the region
    are 0 (they lie within ``roi_size - 1`` of a block edge that is not the slide's edge, where callers discard the
    output). Takes the arguments of :class:`~monai.inferers.SlidingWindowInferer`; ``buffer_steps``, ``with_coord``
    and ``roi_weight_map`` are not supported with a region.
    """

    @classmethod
    def from_inferer(cls, inferer: SlidingWindowInferer) -> RegionSlidingWindowInferer:
        """The region-aware twin of ``inferer``, with all its settings."""
        twin = cls.__new__(cls)
        twin.__dict__.update(vars(inferer))
        return twin

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        region = region_of(inputs)
        if region is None:
            return super().__call__(inputs, network, *args, **kwargs)
        if self.buffer_steps or self.with_coord or self.roi_weight_map is not None:
            raise ValueError(
                "RegionSlidingWindowInferer: buffer_steps, with_coord and roi_weight_map need a whole image."
            )
        if inputs.ndim != 4:
            raise ValueError(f"RegionSlidingWindowInferer expects (B, C, h, w), got shape {tuple(inputs.shape)}.")
        size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
        roi = tuple(int(r) for r in fall_back_tuple(self.roi_size, region.slide_shape))
        if any(s < r for s, r in zip(region.slide_shape, roi)):
            if size != region.slide_shape:
                raise ValueError(f"a slide of {region.slide_shape} smaller than roi_size {roi} is predicted whole.")
            return super().__call__(inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs, network)
        starts = self._window_starts(region, roi, size)
        return self._blend(inputs, network, starts, roi, size, *args, **kwargs)

    def _window_starts(self, region: SlideRegion, roi: tuple[int, ...], size: tuple[int, int]) -> list[tuple[int, int]]:
        """Local (y, x) starts of the whole slide's windows that lie inside the region, in MONAI's order (rows
        first). The grid is the product of one list of starts per axis, so only those are listed: the slide's
        whole grid, millions of windows on a large slide, is never built."""
        interval = _get_scan_interval(region.slide_shape, roi, 2, tuple(self.overlap_tuple()))
        inside = []
        for axis in range(2):
            first, length = region.offset[axis], size[axis]
            windows = dense_patch_slices((region.slide_shape[axis],), (roi[axis],), (interval[axis],))
            starts = (int(window[0].start) for window in windows)
            inside.append([start - first for start in starts if first <= start <= first + length - roi[axis]])
        return [(y, x) for y in inside[0] for x in inside[1]]

    def overlap_tuple(self) -> tuple[float, float]:
        overlap = self.overlap
        return (float(overlap), float(overlap)) if isinstance(overlap, (int, float)) else tuple(overlap)  # type: ignore[return-value]

    def _blend(self, inputs, network, starts, roi, size, *args: Any, **kwargs: Any) -> torch.Tensor:
        """Weighted mean of the windows at ``starts``, as MONAI blends them (weights summed, then divided)."""
        image = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        sw_device = self.sw_device or image.device
        out_device = self.device or image.device
        if self.cpu_thresh is not None and size[0] * size[1] > self.cpu_thresh:
            out_device = torch.device("cpu")
        weight = compute_importance_map(roi, mode=self.mode, sigma_scale=self.sigma_scale, device=sw_device)
        weight = weight.to(dtype=image.dtype)[None, None]
        total: torch.Tensor | None = None
        count = torch.zeros((1, 1, *size), dtype=image.dtype, device=out_device)
        windows = [(b, y, x) for b in range(image.shape[0]) for y, x in starts]
        for first in range(0, len(windows), self.sw_batch_size):
            batch = windows[first : first + self.sw_batch_size]
            data = torch.cat([image[b : b + 1, :, y : y + roi[0], x : x + roi[1]] for b, y, x in batch]).to(sw_device)
            prediction = network(data, *args, **kwargs)
            if not isinstance(prediction, torch.Tensor) or tuple(prediction.shape[-2:]) != roi:
                raise ValueError(
                    "RegionSlidingWindowInferer needs a network returning one tensor of the window's size."
                )
            weighted = (prediction * weight).to(out_device)
            if total is None:
                total = torch.zeros(
                    (image.shape[0], prediction.shape[1], *size), dtype=weighted.dtype, device=out_device
                )
            for k, (b, y, x) in enumerate(batch):
                total[b, :, y : y + roi[0], x : x + roi[1]] += weighted[k]
                if b == 0:
                    count[0, :, y : y + roi[0], x : x + roi[1]] += weight[0].to(out_device)
        if total is None:
            raise ValueError(f"no window of the slide's grid lies inside the region of size {size}.")
        output = torch.where(count > 0, total / count.clamp_min(torch.finfo(count.dtype).tiny), 0)
        if isinstance(inputs, MetaTensor):
            output = MetaTensor(output, meta=dict(inputs.meta))
        return output
