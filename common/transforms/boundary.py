"""Training targets of the DSB watershed method: whole-nucleus mask and the band where nuclei touch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type

from .base import ArrayMapTransform

__all__ = ["instance_to_boundary_targets", "InstanceToBoundaryTargets", "InstanceToBoundaryTargetsd"]


def _window_max(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Maximum over the (2 radius + 1)² square around each pixel of a (H, W) float tensor."""
    return F.max_pool2d(x[None, None], kernel_size=2 * radius + 1, stride=1, padding=radius)[0, 0]


def instance_to_boundary_targets(labels, boundary_width: int = 2) -> torch.Tensor:
    """Nucleus mask and touching-boundary mask of an instance label image.

    A nucleus pixel is on the touching boundary when a pixel of another nucleus lies within
    ``boundary_width`` pixels of it (chessboard distance), so the band between two touching nuclei is about
    ``2 * boundary_width`` pixels wide and never covers background or nuclei that touch nothing.

    Args:
        labels: (H, W) or (1, H, W) integer instance labels, 0 is background (NumPy array or tensor, any device).
        boundary_width: reach of the band on each side of a contact, in pixels (>= 1).

    Returns:
        (2, H, W) float32 tensor on the device of ``labels``: channel 0 nucleus (labels > 0), channel 1 boundary.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 2:
        raise ValueError(
            f"labels: expected an (H, W) or (1, H, W) instance label image, got shape {tuple(labels.shape)}."
        )
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise TypeError("labels: expected integer instance ids, got fractional values.")
    if boundary_width < 1:
        raise ValueError(f"boundary_width: expected at least 1 pixel, got {boundary_width}.")
    ids = labels.to(torch.float64)  # exact for ids up to 2**53, and max_pool2d needs floating point
    foreground = ids > 0
    highest_near = _window_max(ids, boundary_width)
    # lowest non-zero id nearby: the maximum of -id where background counts as -inf
    lowest_near = -_window_max(torch.where(foreground, -ids, torch.full_like(ids, -float("inf"))), boundary_width)
    boundary = foreground & (highest_near != lowest_near)
    return torch.stack([foreground, boundary]).to(torch.float32)


class InstanceToBoundaryTargets(Transform):
    """Array transform: (1, H, W) instance labels -> (2, H, W) float32 [nucleus, touching boundary] targets.

    See :func:`instance_to_boundary_targets`.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, boundary_width: int = 2) -> None:
        self.boundary_width = boundary_width

    def __call__(self, labels: NdarrayOrTensor) -> NdarrayOrTensor:
        targets = instance_to_boundary_targets(labels, self.boundary_width)
        return convert_to_dst_type(targets, labels, dtype=torch.float32)[0]


class InstanceToBoundaryTargetsd(ArrayMapTransform):
    """Dictionary version of :class:`InstanceToBoundaryTargets`.

    Args:
        keys: keys of the instance label images.
        boundary_width: see :func:`instance_to_boundary_targets`.
        output_keys: where to store the targets, one per key; by default they replace the labels.
        allow_missing_keys: do not raise for absent keys.
    """

    backend = InstanceToBoundaryTargets.backend

    def __init__(
        self,
        keys: KeysCollection,
        boundary_width: int = 2,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, InstanceToBoundaryTargets(boundary_width), output_keys, allow_missing_keys)
