"""A bundle's own inference on one block of a slide: preprocessing, inferer, post-processing, seams stitched.

:class:`BlockPredictor` holds the objects a bundle's ``inference.json`` builds (network, inferer, preprocessing,
postprocessing) and runs them on a region of the slide around one block's core, as the bundle's ``inferring`` run
does on a whole image, except that the leading ``Load*`` transforms and the trailing ``Save*`` transforms are left
out (the slide is read and the output written block by block by :class:`common.slides.SlideInference`).

Every sliding-window inferer in the bundle's inferer (also inside test-time augmentation or channel sources) is
replaced by its region-aware twin (:class:`common.inferers.RegionSlidingWindowInferer`), so each core pixel is
predicted from the whole slide's windows, as in memory. The region is the core grown by ``halo``: the longest window
side minus one, plus ``instance_halo`` for bundles whose post-processing turns the prediction into instances.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.transforms import Compose
from monai.utils import fall_back_tuple
from torch.utils.data import default_collate

from common.inferers import ChannelSourcesInferer, DihedralTTAInferer, RegionSlidingWindowInferer, SlideRegion
from common.inferers.region import with_region

from .blocks import Block
from .stitch import CELL_DTYPE, stitch_block

__all__ = ["BlockPredictor", "BlockOutput", "split_compose", "region_aware", "KINDS"]

#: what a bundle's post-processing makes: instance labels, semantic labels, or image channels
KINDS = ("instances", "semantic", "image")
_NO_CELLS = np.zeros(0, CELL_DTYPE)


@dataclass
class BlockOutput:
    """What one block gives: the core's values (``(C, h, w)`` float32 for images, ``(h, w)`` labels otherwise)
    and, for instances, the :data:`common.slides.stitch.CELL_DTYPE` rows of the cells this block owns."""

    block: Block
    core: np.ndarray
    cells: np.ndarray


def split_compose(compose: Compose, prefix: str, leading: bool) -> tuple[Compose, Compose]:
    """``compose`` without the run of transforms whose class name starts with ``prefix`` at its start
    (``leading``) or end, and those transforms; a shallow copy, ``compose`` itself is unchanged."""
    transforms = list(compose.transforms)
    removed: list = []
    while transforms and type(transforms[0 if leading else -1]).__name__.startswith(prefix):
        removed.insert(len(removed) if leading else 0, transforms.pop(0 if leading else -1))
    rest = copy.copy(compose)
    rest.transforms = tuple(transforms)
    return rest, Compose(removed)


def region_aware(inferer: Any) -> tuple[Any, int]:
    """(``inferer`` with every sliding window made region-aware, the longest window side): sliding windows,
    test-time augmentation over them and channel sources of them are supported; a network run on the whole image
    cannot be split into blocks and raises ``ValueError``."""
    if isinstance(inferer, SlidingWindowInferer):
        roi = [int(r) for r in np.atleast_1d(inferer.roi_size)]
        if min(roi) < 1:
            raise ValueError(f"blockwise inference needs a fixed window size, the inferer's roi_size is {roi}.")
        twin = (
            inferer
            if isinstance(inferer, RegionSlidingWindowInferer)
            else RegionSlidingWindowInferer.from_inferer(inferer)
        )
        return twin, max(fall_back_tuple(roi, roi))
    if isinstance(inferer, DihedralTTAInferer):
        inner, window = region_aware(_required(inferer.inferer, "the test-time augmentation"))
        tta = copy.copy(inferer)
        tta.inferer = inner
        return tta, window
    if isinstance(inferer, ChannelSourcesInferer):
        sources, window = copy.copy(inferer), 0
        sources.sources = {}
        for name, source in inferer.sources.items():
            inner, size = region_aware(_required(source.get("inferer"), f"channel source {name!r}"))
            sources.sources[name], window = {**source, "inferer": inner}, max(window, size)
        return sources, window
    raise ValueError(f"blockwise inference cannot split a {type(inferer).__name__} into blocks.")


def _required(inferer: Any, what: str) -> Any:
    if inferer is None:
        raise ValueError(
            f"{what} runs its network on the whole image, which cannot be split into blocks: give it a sliding-window "
            "inferer (the bundle's large_image.json does)."
        )
    return inferer


class BlockPredictor:
    """The bundle's inference on the region around one block (see the module doc).

    Args:
        network, inferer, preprocessing, postprocessing: the objects of the bundle's ``inference.json``.
        kind: ``"instances"`` (post-processing gives instance labels: stitched across seams), ``"semantic"``
            (labels per pixel) or ``"image"`` (float channels).
        device, amp: where and how the network runs.
        instance_halo: pixels of exact prediction around the core that the instance post-processing needs to see
            every cell touching the core whole (at least the largest cell's diameter).
        item: more keys of the sample the preprocessing reads (e.g. the adipocyte models' ``magnification``).
        transposed: the preprocessing transposes the image (LIVECell), so the inferer works on the transposed slide.
        network_inputs: keyword argument of the network -> key of the sample, passed as a batch of one (as the
            evaluator's ``PrepareBatchExtraInput(extra_keys=...)``; the adipocyte models' ``magnification``).
        image_key, pred_key: the sample's keys of the image and of the prediction.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        inferer: Any,
        preprocessing: Compose,
        postprocessing: Compose,
        kind: str,
        device: str | torch.device = "cpu",
        amp: bool = False,
        instance_halo: int = 0,
        item: dict | None = None,
        transposed: bool = False,
        network_inputs: dict[str, str] | None = None,
        image_key: str = "image",
        pred_key: str = "pred",
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
        if instance_halo < 0 or (kind != "instances" and instance_halo):
            raise ValueError(f"instance_halo is a non-negative margin for kind 'instances', got {instance_halo}.")
        self.preprocessing, _ = split_compose(preprocessing, "Load", leading=True)
        self.postprocessing, _ = split_compose(postprocessing, "Save", leading=False)
        resampling = [type(t).__name__ for t in self.preprocessing.transforms if "PixelSize" in type(t).__name__]
        if resampling:
            raise ValueError(
                f"blockwise inference does not resample ({resampling}); open the slide at the resolution level "
                "nearest the training pixel size instead (the `level` id)."
            )
        self.inferer, window = region_aware(inferer)
        self.network, self.kind, self.amp = network, kind, amp
        self.device = torch.device(device)
        self.instance_halo, self.item, self.transposed = instance_halo, dict(item or {}), transposed
        self.network_inputs = dict(network_inputs or {})
        self.image_key, self.pred_key = image_key, pred_key
        #: pixels of context around the exactly predicted area: every window covering it lies in the region
        self.context = window - 1
        self.halo = self.context + instance_halo

    def to(self, device: str | torch.device) -> BlockPredictor:
        """Run the network on ``device`` from now on (a worker's own GPU)."""
        self.device = torch.device(device)
        self.network.to(self.device)
        return self

    def __call__(self, pixels: np.ndarray, block: Block, region: tuple[int, int, int, int], slide_shape, source: str):
        """:class:`BlockOutput` of ``block`` from ``pixels`` (C, h, w), the slide's ``region`` (y0, y1, x0, x1),
        which must be ``block.grown(self.halo, slide_shape)``; ``source`` names the slide in errors."""
        if region != block.grown(self.halo, slide_shape):
            raise ValueError(f"block {block.name}: region {region} is not the core grown by the halo {self.halo}.")
        y0, y1, x0, x1 = region
        image = MetaTensor(torch.as_tensor(np.asarray(pixels, dtype=np.float32)), meta={"filename_or_obj": source})
        data = self.preprocessing({self.image_key: image, **copy.deepcopy(self.item)})
        prepared = data[self.image_key]
        slide_region = SlideRegion((y0, x0), tuple(slide_shape))
        if self.transposed:
            slide_region = slide_region.moved((True, False, False), (y1 - y0, x1 - x0))
        expected = (x1 - x0, y1 - y0) if self.transposed else (y1 - y0, x1 - x0)
        if tuple(prepared.shape[-2:]) != expected:
            raise ValueError(
                f"{source}: the preprocessing made a block of {tuple(prepared.shape[-2:])} pixels from {expected}; "
                "blockwise inference needs a preprocessing that keeps the image's grid (transposed=True if it "
                "transposes it)."
            )
        batch = with_region(torch.as_tensor(prepared)[None].to(self.device), slide_region)
        missing = sorted(key for key in self.network_inputs.values() if key not in data)
        if missing:
            raise ValueError(f"{source}: the network needs {missing} of the sample; give them as `item`.")
        inputs = {name: default_collate([data[key]]) for name, key in self.network_inputs.items()}
        self.network.eval()
        with torch.no_grad(), torch.autocast(self.device.type, enabled=self.amp):
            prediction = self.inferer(batch, self.network, **inputs)[0]
        # the area predicted exactly: the core grown by the instance halo
        ey0, ey1, ex0, ex1 = block.grown(self.instance_halo, slide_shape)
        ys, xs = slice(ey0 - y0, ey1 - y0), slice(ex0 - x0, ex1 - x0)
        crop = (..., xs, ys) if self.transposed else (..., ys, xs)
        data[self.image_key] = prepared[crop]
        data[self.pred_key] = MetaTensor(prediction.float().cpu()[crop], meta=dict(getattr(prepared, "meta", {})))
        output = np.asarray(torch.as_tensor(self.postprocessing(data)[self.pred_key]).cpu())
        core = (slice(block.y0 - ey0, block.y1 - ey0), slice(block.x0 - ex0, block.x1 - ex0))
        if self.kind == "image":
            return BlockOutput(block, output[(slice(None), *core)].astype(np.float32), _NO_CELLS)
        labels = output[0] if output.ndim == 3 else output
        if self.kind == "semantic":
            return BlockOutput(block, labels[core], _NO_CELLS)
        stitched = stitch_block(labels, (ey0, ex0), core, tuple(slide_shape))
        return BlockOutput(block, stitched.core_labels, stitched.cells)
