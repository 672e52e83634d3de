"""MONAI transforms between instance labels and cellpose-style network targets / outputs.

Channel order of targets and network outputs is ``[dy, dx, cellprob]``, the order of MEDIAR's and cellpose's
network outputs. Flow channels are ``flow_scale`` times unit
flows: ``CELLPOSE_FLOW_SCALE`` (5) by default, the scale cellpose and MEDIAR networks are trained to
predict, so a plain MSE on channels 0-1 and a BCE-with-logits on channel 2 reproduce their losses, and their
pretrained networks' outputs can be post-processed here. Backend: torch, on the input's device; NumPy input
is accepted and returned as NumPy.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Optional

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, ensure_tuple

from common.flows import CELLPOSE_FLOW_SCALE, flows_to_labels, labels_to_flows

__all__ = ["LabelsToFlows", "LabelsToFlowsd", "FlowsToLabels", "FlowsToLabelsd"]


def _single_image(data, name: str, channels: int) -> torch.Tensor:
    """(channels, H, W) tensor from (channels, H, W) (or (H, W) when channels == 1) input."""
    data = convert_to_tensor(data, track_meta=False)
    if data.ndim == 2 and channels == 1:
        data = data[None]
    if data.ndim != 3 or data.shape[0] != channels:
        expected = "(1, H, W) or (H, W)" if channels == 1 else f"({channels}, H, W)"
        raise ValueError(f"{name}: expected a {expected} image, got shape {tuple(data.shape)}.")
    return data


class LabelsToFlows(Transform):
    """Training target of a cellpose-style network from instance labels.

    Input: (1, H, W) or (H, W) integer instance labels (any non-negative ids, 0 background).
    Output: (3, H, W) float32 ``[flow_scale * dy, flow_scale * dx, cellprob]`` with cellprob 1.0 on cells and
    0.0 on background, of the input's type and device (MetaTensor metadata kept).

    Args:
        flow_scale: multiple of unit flows in the target (cellpose and MEDIAR: 5).
        log_heat: flows of ``log(1 + T)`` (MEDIAR, cellpose 2) instead of ``T`` (cellpose 3/4).
        niter: diffusion iterations; default cellpose's ``2 * max(h + w + 2)`` over the cells' boxes.
        neighbour_heat: edge flows see neighbouring cells' heat, exactly as cellpose and MEDIAR compute
            them (see :func:`common.flows.labels_to_flows`).
        centre: ``"mean"`` (cellpose 3/4) or ``"median"`` (cellpose 2, MEDIAR): where each cell's heat starts.

    MEDIAR's own targets are ``LabelsToFlows(log_heat=True, neighbour_heat=True, centre="median")``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        flow_scale: float = CELLPOSE_FLOW_SCALE,
        log_heat: bool = False,
        niter: Optional[int] = None,
        neighbour_heat: bool = False,
        centre: str = "mean",
    ):
        self.flow_scale = float(flow_scale)
        self.options = dict(log_heat=log_heat, niter=niter, neighbour_heat=neighbour_heat, centre=centre)

    def __call__(self, label):
        labels = _single_image(label, "label", 1)[0]
        flows = labels_to_flows(labels, **self.options)[0] * self.flow_scale
        target = torch.cat([flows, (labels > 0)[None].to(torch.float32)])
        return convert_to_dst_type(target, label, dtype=torch.float32)[0]


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
            tile_overlap: as in :func:`common.flows.flows_to_labels`.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        flow_scale: float = CELLPOSE_FLOW_SCALE,
        cellprob_logits: bool = True,
        cellprob_threshold: Optional[float] = None,
        flow_threshold: float = 0.4,
        niter: int = 200,
        min_size: int = 15,
        max_size_fraction: float = 0.4,
        log_heat: bool = False,
        neighbour_heat: bool = False,
        centre: str = "mean",
        tile_size: Optional[int] = 4096,
        tile_overlap: int = 128,
    ):
        if cellprob_threshold is None:
            cellprob_threshold = 0.0 if cellprob_logits else 0.5
        if not cellprob_logits and not 0.0 <= cellprob_threshold <= 1.0:
            raise ValueError(f"cellprob_threshold: expected a probability in [0, 1], got {cellprob_threshold}.")
        self.options = dict(
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
        )

    def __call__(self, pred):
        pred_t = _single_image(pred, "pred", 3)
        if not pred_t.is_floating_point():
            raise TypeError(f"pred: expected a floating-point network output, got dtype {pred_t.dtype}.")
        labels = flows_to_labels(pred_t[:2], pred_t[2], **self.options)[None]
        return convert_to_dst_type(labels, pred, dtype=torch.int32)[0]


class _Mapd(MapTransform):
    """Apply an array transform to ``keys``, writing to ``output_keys`` (default: in place)."""

    def __init__(
        self,
        transform: Transform,
        keys: KeysCollection,
        output_keys: Optional[KeysCollection],
        allow_missing_keys: bool,
    ):
        super().__init__(keys, allow_missing_keys)
        self.transform = transform
        output_keys = self.keys if output_keys is None else ensure_tuple(output_keys)
        if len(output_keys) != len(self.keys):
            raise ValueError(f"output_keys: expected {len(self.keys)} keys, one per key, got {len(output_keys)}.")
        self.output_keys = output_keys

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key, output_key in self.key_iterator(d, self.output_keys):
            try:
                d[output_key] = self.transform(d[key])
            except (TypeError, ValueError) as error:  # name the key, not only the array argument
                raise type(error)(f"key {key!r}: {error}") from error
        return d


class LabelsToFlowsd(_Mapd):
    """Dictionary version of :class:`LabelsToFlows`; ``output_keys`` (default ``keys``) receive the targets."""

    backend = LabelsToFlows.backend

    def __init__(
        self,
        keys: KeysCollection,
        output_keys: Optional[KeysCollection] = None,
        flow_scale: float = CELLPOSE_FLOW_SCALE,
        log_heat: bool = False,
        niter: Optional[int] = None,
        neighbour_heat: bool = False,
        centre: str = "mean",
        allow_missing_keys: bool = False,
    ):
        transform = LabelsToFlows(flow_scale, log_heat, niter, neighbour_heat, centre)
        super().__init__(transform, keys, output_keys, allow_missing_keys)


class FlowsToLabelsd(_Mapd):
    """Dictionary version of :class:`FlowsToLabels`; ``output_keys`` (default ``keys``) receive the labels.
    Keyword arguments other than the keys go to :class:`FlowsToLabels`."""

    backend = FlowsToLabels.backend

    def __init__(
        self,
        keys: KeysCollection,
        output_keys: Optional[KeysCollection] = None,
        allow_missing_keys: bool = False,
        **kwargs,
    ):
        super().__init__(FlowsToLabels(**kwargs), keys, output_keys, allow_missing_keys)
