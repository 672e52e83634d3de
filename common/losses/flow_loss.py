"""Loss of cellpose-style networks predicting ``[dy, dx, cellprob]``: BCE on cell probability plus weighted MSE
on flows (MEDIAR: 0.5 x MSE against 5 x unit flows of ``log(1 + heat)``, median centres, cellpose 2 flows)."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from monai.utils import convert_to_tensor
from torch.nn.modules.loss import _Loss

from common.flows import CELLPOSE_FLOW_SCALE, labels_to_flows

__all__ = ["FlowCellprobLoss"]


class FlowCellprobLoss(_Loss):
    """``BCE-with-logits(cellprob) + flow_weight * MSE(flows, flow_scale * target flows)`` over valid pixels.

    The target is either instance labels, whose flows are computed here on their device (on the GPU when
    training runs there, as MEDIAR does), or targets computed beforehand by
    :class:`common.transforms.LabelsToFlowsd` with the same options:

    - (B, 1, H, W) integer instance labels, 0 background; pixels with a negative label are left out of both
      terms (:class:`common.transforms.BoundaryExclusiond` with ``mode="ignore"`` marks them so);
    - (B, 3, H, W) float ``[flow_scale * dy, flow_scale * dx, cellprob]``.

    Args:
        flow_weight: weight of the flow MSE (MEDIAR and cellpose: 0.5).
        flow_scale: multiple of unit flows the network predicts (5).
        log_heat, neighbour_heat, centre: the flow variant (see :func:`common.flows.labels_to_flows`); the
            defaults are MEDIAR's.

    Input ``pred``: (B, 3, H, W) ``[dy, dx, cellprob logit]``. Returns a scalar: each term is the mean over
    valid pixels (and, for the MSE, both flow channels), as ``nn.MSELoss`` and ``nn.BCEWithLogitsLoss`` give
    when every pixel is valid.
    """

    def __init__(
        self,
        flow_weight: float = 0.5,
        flow_scale: float = CELLPOSE_FLOW_SCALE,
        log_heat: bool = True,
        neighbour_heat: bool = True,
        centre: str = "median",
    ) -> None:
        super().__init__()
        self.flow_weight = float(flow_weight)
        self.flow_scale = float(flow_scale)
        self.labels_to_flows = partial(labels_to_flows, log_heat=log_heat, neighbour_heat=neighbour_heat, centre=centre)

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) instance labels -> (B, 3, H, W) float32 ``[flow_scale * dy, flow_scale * dx, cellprob]``."""
        ids = labels[:, 0].clamp(min=0)
        if ids.is_floating_point():
            ids = ids.round().long()
        flows = self.labels_to_flows(ids) * self.flow_scale
        return torch.cat([flows, (ids > 0)[:, None].to(flows.dtype)], dim=1)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"pred: expected (B, 3, H, W) [dy, dx, cellprob], got shape {tuple(pred.shape)}.")
        if target.shape[0] != pred.shape[0] or target.shape[2:] != pred.shape[2:] or target.shape[1] not in (1, 3):
            raise ValueError(
                f"target: expected (B, 1, H, W) instance labels or (B, 3, H, W) flow targets matching pred "
                f"{tuple(pred.shape)}, got shape {tuple(target.shape)}."
            )
        # plain float32 tensors: no MetaTensor bookkeeping, and sums over a batch of 512 x 512 patches would
        # overflow float16 under mixed precision (MEDIAR's nn.MSELoss / BCEWithLogitsLoss run in float32 there)
        pred = convert_to_tensor(pred, track_meta=False).float()
        target = convert_to_tensor(target, track_meta=False)
        if target.shape[1] == 1:
            valid = (target >= 0).to(pred.dtype)
            with torch.no_grad(), torch.autocast(device_type=target.device.type, enabled=False):
                target = self.targets(target)
        else:
            valid = torch.ones_like(pred[:, :1])
        target = target.float()
        count = valid.sum().clamp(min=1)
        flow_error = ((pred[:, :2] - target[:, :2]) ** 2 * valid).sum() / (2 * count)
        bce = F.binary_cross_entropy_with_logits(pred[:, 2:], target[:, 2:], reduction="none")
        return (bce * valid).sum() / count + self.flow_weight * flow_error
