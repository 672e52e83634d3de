"""The base of the collection's dictionary transforms: an array transform applied to each key.

Every ``Food`` of ``common`` that applies an array transform ``Foo`` key by key derives from
:class:`ArrayMapTransform` (random ones from :class:`RandArrayMapTransform`), so that all of them take
``keys``, ``allow_missing_keys`` and, where a transform writes elsewhere, ``output_keys``, and name the key in
their errors. Dictionary-only transforms that combine or move entries (like MONAI's ``ConcatItemsd`` and
``CopyItemsd``: :class:`~common.transforms.ConcatChannelsd`, :class:`~common.transforms.CopyItemsToMetad`)
derive from MONAI's ``MapTransform`` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Randomizable
from monai.utils import ensure_tuple

__all__ = ["ArrayMapTransform", "RandArrayMapTransform"]


class ArrayMapTransform(MapTransform):
    """Applies ``transform`` to the value of each of ``keys``, writing it to ``output_keys`` (default: in place).

    Args:
        keys: keys of the values to transform.
        transform: the array transform.
        output_keys: where each result goes, one per key; None replaces the inputs.
        allow_missing_keys: skip absent keys rather than raise.
        argument_keys: keys whose values are passed to ``transform`` after each key's value (for a step that
            reads further images, such as markers and a mask).

    Raises:
        TypeError, ValueError: the array transform's error, prefixed with the key it was applied to.
    """

    def __init__(
        self,
        keys: KeysCollection,
        transform: Callable,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
        argument_keys: Sequence[Hashable] = (),
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = transform
        self.argument_keys = tuple(argument_keys)
        self.output_keys = self.keys if output_keys is None else ensure_tuple(output_keys)
        if len(self.output_keys) != len(self.keys):
            raise ValueError(f"output_keys: expected {len(self.keys)} keys, one per key, got {list(self.output_keys)}.")

    def apply(self, key: Hashable, value, *args, **kwargs):
        """``transform(value, *args, **kwargs)``, its TypeError or ValueError naming ``key``."""
        try:
            return self.transform(value, *args, **kwargs)
        except (TypeError, ValueError) as error:
            raise type(error)(f"key {key!r}: {error}") from error

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key, output_key in self.key_iterator(d, self.output_keys):
            d[output_key] = self.apply(key, d[key], *(d[argument] for argument in self.argument_keys))
        return d


class _RandomArrayTransform(Protocol):
    """A random array transform: callable, and seeded by MONAI's ``set_random_state``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> Any: ...


class RandArrayMapTransform(Randomizable, ArrayMapTransform):
    """:class:`ArrayMapTransform` of a random array transform: ``set_random_state`` seeds this transform and
    the array transform alike, as MONAI's random dictionary transforms do."""

    transform: _RandomArrayTransform

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandArrayMapTransform:
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed, state)
        return self
