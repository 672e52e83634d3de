"""Maximum-intensity projection of a stack of planes (z-slices loaded as channels) onto one image."""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends

from .base import ArrayMapTransform

__all__ = ["MaxIntensityProjection", "MaxIntensityProjectiond"]


class MaxIntensityProjection(Transform):
    """(Z, H, W) stack -> (1, H, W): the largest value of each pixel over the planes.

    A z-stack read from several files by ``LoadImaged(reader=common.io.MicroscopyReader(),
    ensure_channel_first=True)`` has its planes as channels, so the default projects the channel axis. Keeps
    the type (NumPy array, tensor or MetaTensor with its meta data), dtype and device; the maximum is exact.

    Args:
        dim: the axis holding the planes.
        keepdim: keep that axis with length 1 (a channel-first image) rather than dropping it.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, dim: int = 0, keepdim: bool = True) -> None:
        self.dim, self.keepdim = dim, keepdim

    def __call__(self, stack: NdarrayOrTensor) -> NdarrayOrTensor:
        if stack.ndim < 3:
            raise ValueError(
                f"stack: expected planes along axis {self.dim} of a (Z, H, W) array, got shape {tuple(stack.shape)}."
            )
        if stack.shape[self.dim] == 0:
            raise ValueError(f"stack: no plane to project along axis {self.dim} (shape {tuple(stack.shape)}).")
        if isinstance(stack, np.ndarray):
            return stack.max(axis=self.dim, keepdims=self.keepdim)
        return torch.amax(stack, dim=self.dim, keepdim=self.keepdim)


class MaxIntensityProjectiond(ArrayMapTransform):
    """Dictionary version of :class:`MaxIntensityProjection`: each key's stack is replaced by its projection."""

    backend = MaxIntensityProjection.backend

    def __init__(
        self,
        keys: KeysCollection,
        dim: int = 0,
        keepdim: bool = True,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, MaxIntensityProjection(dim, keepdim), output_keys, allow_missing_keys)
