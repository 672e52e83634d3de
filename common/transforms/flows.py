"""Training targets of cellpose-style networks from instance labels (the way back is
:class:`common.postprocess.FlowsToLabels`).

Channel order of targets and network outputs is ``[dy, dx, cellprob]``, the order of MEDIAR's and cellpose's
network outputs. Flow channels are ``flow_scale`` times unit
flows: ``CELLPOSE_FLOW_SCALE`` (5) by default, the scale cellpose and MEDIAR networks are trained to
predict, so a plain MSE on channels 0-1 and a BCE-with-logits on channel 2 reproduce their losses. Backend:
torch, on the input's device; NumPy input is accepted and returned as NumPy.
"""

from __future__ import annotations

from functools import partial

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type

from common.flows import CELLPOSE_FLOW_SCALE, labels_to_flows

from .base import ArrayMapTransform
from .checks import as_channel_image

__all__ = ["LabelsToFlows", "LabelsToFlowsd"]


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
        niter: int | None = None,
        neighbour_heat: bool = False,
        centre: str = "mean",
    ):
        self.flow_scale = float(flow_scale)
        self.labels_to_flows = partial(
            labels_to_flows, log_heat=log_heat, niter=niter, neighbour_heat=neighbour_heat, centre=centre
        )

    def __call__(self, label: NdarrayOrTensor) -> NdarrayOrTensor:
        labels = as_channel_image(label, "label", 1)[0]
        flows = self.labels_to_flows(labels)[0] * self.flow_scale
        target = torch.cat([flows, (labels > 0)[None].to(torch.float32)])
        return convert_to_dst_type(target, label, dtype=torch.float32)[0]


class LabelsToFlowsd(ArrayMapTransform):
    """Dictionary version of :class:`LabelsToFlows`; ``output_keys`` (default ``keys``) receive the targets."""

    backend = LabelsToFlows.backend

    def __init__(
        self,
        keys: KeysCollection,
        output_keys: KeysCollection | None = None,
        flow_scale: float = CELLPOSE_FLOW_SCALE,
        log_heat: bool = False,
        niter: int | None = None,
        neighbour_heat: bool = False,
        centre: str = "mean",
        allow_missing_keys: bool = False,
    ):
        transform = LabelsToFlows(flow_scale, log_heat, niter, neighbour_heat, centre)
        super().__init__(keys, transform, output_keys, allow_missing_keys)
