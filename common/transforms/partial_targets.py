"""Items with several input slices and targets for only some output channels (Light My Cells organelles).

* :class:`RandSliceAndTargetd` draws, per training sample, one input slice and one of the targets the item
  has, and drops the rest, so that the item becomes batchable (one path per key).
* :class:`ConcatChannelsd` stacks the target images into the network's channel order, a channel of NaN
  standing for a target the item does not have; losses and metrics skip NaN (``common.losses.L1L2PCCLoss``,
  ``common.metrics.fluorescence``).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import TransformBackends, convert_to_dst_type

from .base import RandArrayMapTransform

__all__ = ["RandSliceAndTarget", "RandSliceAndTargetd", "ConcatChannels", "ConcatChannelsd"]


class RandSliceAndTarget(Randomizable, Transform):
    """Draw one of ``n`` slices and one of the available target names, uniformly and independently.

    ``__call__(slices, available)`` returns ``(slice, name)``: an element of the sequence ``slices`` and one of
    the names of ``available`` that ``targets`` allows (all of them when ``targets`` is None). Seeded with
    ``set_random_state``; the draw happens in :meth:`randomize`.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, targets: Sequence[str] | None = None) -> None:
        self.targets = None if targets is None else tuple(targets)
        self._slice = 0
        self._name: str | None = None

    def allowed(self, available: Sequence[str]) -> list[str]:
        """The names of ``available`` that may be drawn, in their given order."""
        return [name for name in available if self.targets is None or name in self.targets]

    def randomize(self, n_slices: int, names: Sequence[str]) -> None:  # type: ignore[override]  # MONAI's randomize(data)
        if n_slices < 1:
            raise ValueError("expected at least one input slice, got none.")
        if not names:
            which = f"none of its targets is among {list(self.targets)}" if self.targets else "it has no target"
            raise ValueError(f"no target to draw, {which}.")
        self._slice = int(self.R.randint(n_slices))
        self._name = names[int(self.R.randint(len(names)))]

    @property
    def drawn(self) -> tuple[int, str | None]:
        """(slice index, target name) of the last draw."""
        return self._slice, self._name

    def __call__(  # type: ignore[override]  # MONAI's Transform.__call__(data) takes one argument
        self, slices: Sequence, available: Sequence[str], randomize: bool = True
    ) -> tuple[object, str | None]:
        if randomize:
            self.randomize(len(slices), self.allowed(available))
        return slices[self._slice], self._name


class RandSliceAndTargetd(RandArrayMapTransform):
    """Reduce an item with several z-slices and targets to one slice and one target, drawn at random.

    Built for :func:`common.io.lmc_datalist` items, before loading: ``image`` becomes the path of one drawn
    z-slice (``z`` its plane number), only the drawn one of the target ``keys`` is kept, and the keys holding
    the lists (``slices_key``, ``drop_keys``) are removed, so every value is batchable.

    Args:
        keys: target keys, e.g. ``LMC_ORGANELLES``; the item has some of them.
        targets: names that may be drawn (e.g. ``["Actin"]`` to fine-tune on actin); None allows all ``keys``.
        slices_key: key of the list of input slices.
        image_key: where the drawn slice goes.
        z_key: key of the list of plane numbers matching ``slices_key`` (replaced by the drawn one; skipped
            when absent).
        drop_keys: further keys to remove (``lmc_datalist``'s ``targets`` dict and ``organelles`` list).

    Raises:
        ValueError: naming the item's ``id`` when it has no slice or no allowed target.
    """

    backend = RandSliceAndTarget.backend
    transform: RandSliceAndTarget

    def __init__(
        self,
        keys: KeysCollection,
        targets: Sequence[str] | None = None,
        slices_key: str = "inputs",
        image_key: str = "image",
        z_key: str = "z",
        drop_keys: Sequence[str] = ("targets", "organelles"),
    ) -> None:
        super().__init__(keys, RandSliceAndTarget(targets), allow_missing_keys=True)
        self.slices_key, self.image_key, self.z_key, self.drop_keys = slices_key, image_key, z_key, tuple(drop_keys)

    def randomize(self, data: Mapping[Hashable, Any]) -> None:
        self.transform.randomize(len(data[self.slices_key]), self.transform.allowed(list(self.key_iterator(data))))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.slices_key not in d:
            raise KeyError(f"{d.get('id', 'item')}: no {self.slices_key!r} key holding the input slices.")
        present = list(self.key_iterator(d))
        try:
            self.randomize(d)
            d[self.image_key], name = self.transform(d[self.slices_key], present, randomize=False)
        except ValueError as error:
            raise ValueError(f"{d.get('id', 'item')}: {error}") from error
        if self.z_key in d:
            d[self.z_key] = d[self.z_key][self.transform.drawn[0]]
        for key in [*present, self.slices_key, *self.drop_keys]:
            if key != name and key != self.image_key:
                d.pop(key, None)
        return d


class ConcatChannels(Transform):
    """Array transform: a sequence of (1, H, W) images or None -> (C, H, W), None giving a channel of ``fill_value``.

    At least one image must be present, to give the shape; all present ones must share (H, W).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, fill_value: float = float("nan")) -> None:
        self.fill_value = fill_value

    def __call__(self, images: Sequence[NdarrayOrTensor | None]) -> NdarrayOrTensor:
        present = [image for image in images if image is not None]
        if not present:
            raise ValueError("images: all channels are missing, nothing gives the image size.")
        reference = torch.as_tensor(present[0])
        channels = []
        for image in images:
            if image is None:
                channels.append(torch.full((1, *reference.shape[1:]), self.fill_value, dtype=torch.float32))
                continue
            image = torch.as_tensor(image)
            if image.ndim != 3 or image.shape[0] != 1 or image.shape[1:] != reference.shape[1:]:
                size = tuple(reference.shape[1:])
                raise ValueError(f"images: expected (1, H, W) images of one size {size}, got {tuple(image.shape)}.")
            channels.append(image.to(torch.float32))
        stacked = torch.cat([channel.to(reference.device).as_subclass(torch.Tensor) for channel in channels])
        return convert_to_dst_type(stacked, present[0], dtype=torch.float32)[0]


class ConcatChannelsd(MapTransform):
    """Stack ``keys`` (each (1, H, W)) into ``name`` as channels in the order of ``keys``; absent keys give NaN.

    With ``keys=LMC_ORGANELLES`` the label becomes (4, H, W) in the network's output order, NaN in the channel
    of every organelle the image has no target for (or that :class:`RandSliceAndTargetd` did not draw).

    Args:
        keys: keys to stack, in channel order.
        name: key of the stacked image.
        fill_value: value of a missing channel.
        delete_keys: remove the stacked keys (they exist in some items only, which would stop batching).

    Raises:
        KeyError: naming the item's ``id`` when none of ``keys`` is present.
    """

    backend = ConcatChannels.backend

    def __init__(
        self, keys: KeysCollection, name: str = "label", fill_value: float = float("nan"), delete_keys: bool = True
    ) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.name, self.delete_keys = name, delete_keys
        self.concat = ConcatChannels(fill_value)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        images = [d.get(key) for key in self.keys]
        if all(image is None for image in images):
            raise KeyError(f"{d.get('id', 'item')}: none of the target keys {list(self.keys)} is present.")
        d[self.name] = self.concat(images)
        if self.delete_keys:
            for key in self.keys:
                if key != self.name:
                    d.pop(key, None)
        return d
