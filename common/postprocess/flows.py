"""Instance labels from a cellpose-style network output ``[dy, dx, cellprob]`` (the inverse of
:class:`common.transforms.LabelsToFlows`). Backend: torch, on the input's device; NumPy input is accepted and
returned as NumPy."""

from __future__ import annotations

from functools import partial

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type

from common.flows import CELLPOSE_FLOW_SCALE, flows_to_labels
from common.transforms.base import ArrayMapTransform
from common.transforms.checks import as_channel_image

__all__ = ["FlowsToLabels", "FlowsToLabelsd"]


class FlowsToLabels(Transform):
    """Instance labels from a cellpose-style network output (post-processing for inference).

    Input: (3, H, W) ``[dy, dx, cellprob]``, flows at ``flow_scale`` times unit scale, cellprob as logits or
    probabilities. Output: (1, H, W) int32 labels 0..N of the input's type and device.

    Args:
        flow_scale: scale of the predicted flows (cellpose and MEDIAR: 5).
        cellprob_logits: True if channel 2 holds logits, False if probabilities (sigmoid already applied).
        cellprob_threshold: pixels above it are followed; default 0.0 for logits, 0.5 for probabilities
            (the same pixels).
        flow_threshold, niter, min_size, max_size_fraction, log_heat, neighbour_heat, centre, tile_size,
            tile_overlap, whole_shape: as in :func:`common.flows.flows_to_labels` (``whole_shape``: the slide's
            (H, W) when the input is a block of it).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        flow_scale: float = CELLPOSE_FLOW_SCALE,
        cellprob_logits: bool = True,
        cellprob_threshold: float | None = None,
        flow_threshold: float = 0.4,
        niter: int = 200,
        min_size: int = 15,
        max_size_fraction: float = 0.4,
        log_heat: bool = False,
        neighbour_heat: bool = False,
        centre: str = "mean",
        tile_size: int | None = 4096,
        tile_overlap: int = 128,
        whole_shape: tuple[int, int] | None = None,
    ):
        if cellprob_threshold is None:
            cellprob_threshold = 0.0 if cellprob_logits else 0.5
        if not cellprob_logits and not 0.0 <= cellprob_threshold <= 1.0:
            raise ValueError(f"cellprob_threshold: expected a probability in [0, 1], got {cellprob_threshold}.")
        self.flows_to_labels = partial(
            flows_to_labels,
            cellprob_threshold=float(cellprob_threshold),
            flow_threshold=flow_threshold,
            niter=niter,
            min_size=min_size,
            max_size_fraction=max_size_fraction,
            flow_scale=flow_scale,
            log_heat=log_heat,
            neighbour_heat=neighbour_heat,
            centre=centre,
            tile_size=tile_size,
            tile_overlap=tile_overlap,
            whole_shape=whole_shape,
        )

    def __call__(self, pred: NdarrayOrTensor) -> NdarrayOrTensor:
        pred_t = as_channel_image(pred, "pred", 3)
        if not pred_t.is_floating_point():
            raise TypeError(f"pred: expected a floating-point network output, got dtype {pred_t.dtype}.")
        labels = self.flows_to_labels(pred_t[:2], pred_t[2])[None]
        return convert_to_dst_type(labels, pred, dtype=torch.int32)[0]


class FlowsToLabelsd(ArrayMapTransform):
    """Dictionary version of :class:`FlowsToLabels`; ``output_keys`` (default ``keys``) receive the labels."""

    backend = FlowsToLabels.backend

    def __init__(
        self,
        keys: KeysCollection,
        output_keys: KeysCollection | None = None,
        flow_scale: float = CELLPOSE_FLOW_SCALE,
        cellprob_logits: bool = True,
        cellprob_threshold: float | None = None,
        flow_threshold: float = 0.4,
        niter: int = 200,
        min_size: int = 15,
        max_size_fraction: float = 0.4,
        log_heat: bool = False,
        neighbour_heat: bool = False,
        centre: str = "mean",
        tile_size: int | None = 4096,
        tile_overlap: int = 128,
        whole_shape: tuple[int, int] | None = None,
        allow_missing_keys: bool = False,
    ):
        transform = FlowsToLabels(
            flow_scale,
            cellprob_logits,
            cellprob_threshold,
            flow_threshold,
            niter,
            min_size,
            max_size_fraction,
            log_heat,
            neighbour_heat,
            centre,
            tile_size,
            tile_overlap,
            whole_shape,
        )
        super().__init__(keys, transform, output_keys, allow_missing_keys)
