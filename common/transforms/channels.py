"""Bring images with any number of channels to the number a network takes, and channels to the order it uses."""

from __future__ import annotations

from collections.abc import Sequence

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends

from .base import ArrayMapTransform

__all__ = ["AsChannels", "AsChannelsd", "ReorderChannels", "ReorderChannelsd"]


class AsChannels(Transform):
    """(C, H, W) -> (n, H, W): a single channel is repeated ``n`` times, extra channels are dropped.

    Grey images become RGB-like inputs for ImageNet-pretrained encoders, and RGBA or multi-channel
    microscopy images keep their first ``n`` channels. An image with 1 < C < n channels has no faithful
    conversion and raises.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, channels: int = 3) -> None:
        if channels < 1:
            raise ValueError(f"channels: expected at least 1, got {channels}.")
        self.channels = channels

    def __call__(self, image: NdarrayOrTensor) -> NdarrayOrTensor:
        if image.ndim < 3:
            raise ValueError(f"image: expected a channel-first (C, H, W) array, got shape {tuple(image.shape)}.")
        count = image.shape[0]
        if count == 1:
            return image[[0] * self.channels]
        if count >= self.channels:
            return image[: self.channels]
        raise ValueError(
            f"image: cannot make {self.channels} channels from {count}; expected 1 or at least {self.channels}."
        )


class AsChannelsd(ArrayMapTransform):
    """Dictionary version of :class:`AsChannels`."""

    backend = AsChannels.backend

    def __init__(
        self,
        keys: KeysCollection,
        channels: int = 3,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, AsChannels(channels), output_keys, allow_missing_keys)


class ReorderChannels(Transform):
    """(C, H, W) -> (C, H, W) with the channels in ``order`` (channel ``order[k]`` of the input becomes channel k).

    For networks whose published checkpoints emit their channels in another order than the bundle's (the DSB
    original's (split lines, nucleus) against the bundle's (nucleus, boundary): ``order=[1, 0]``).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, order: Sequence[int]) -> None:
        self.order = [int(index) for index in order]
        if sorted(self.order) != list(range(len(self.order))):
            raise ValueError(f"order: expected a permutation of 0..{len(self.order) - 1}, got {self.order}.")

    def __call__(self, image: NdarrayOrTensor) -> NdarrayOrTensor:
        if image.ndim < 3 or image.shape[0] != len(self.order):
            raise ValueError(f"image: expected {len(self.order)} channels first, got shape {tuple(image.shape)}.")
        return image[self.order]


class ReorderChannelsd(ArrayMapTransform):
    """Dictionary version of :class:`ReorderChannels`."""

    backend = ReorderChannels.backend

    def __init__(
        self,
        keys: KeysCollection,
        order: Sequence[int],
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, ReorderChannels(order), output_keys, allow_missing_keys)
