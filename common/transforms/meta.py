"""Carrying a sample's fields with its image, in the MetaTensor's meta data."""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform
from monai.utils import TransformBackends

__all__ = ["CopyItemsToMetad", "source_file", "SOURCE_KEY"]

#: key under which :class:`common.transforms.SourceCompose` keeps a sample's source file (a path string).
SOURCE_KEY = "source_file"


class CopyItemsToMetad(MapTransform):
    """Copy entries of the data dictionary (e.g. ``id``, ``magnification``) into the meta data of the images under
    ``keys``.

    MONAI engines hand on only ``image``, ``label`` and ``pred`` as their output, so the other entries of a sample
    are out of reach of handlers and deployment writers; the meta data of an image, however, follows it through
    collation, inferers and networks into the prediction (``pred.meta``), where :class:`common.io.SaveChannelsd`
    and :class:`common.metrics.AdipocyteScores` read them. A dictionary-only transform, like MONAI's
    ``CopyItemsd``: it moves values between entries.

    Args:
        keys: keys of MetaTensor images.
        items: entries to copy; each must exist unless ``allow_missing_items``.
        allow_missing_keys: do not raise for absent ``keys``.
        allow_missing_items: skip absent ``items`` rather than raise.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        keys: KeysCollection,
        items: Sequence[str],
        allow_missing_keys: bool = False,
        allow_missing_items: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.items, self.allow_missing_items = [items] if isinstance(items, str) else list(items), allow_missing_items

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        missing = [item for item in self.items if item not in d]
        if missing and not self.allow_missing_items:
            raise KeyError(f"{missing}: not in the data to copy into meta data (entries: {sorted(map(str, d))}).")
        for key in self.key_iterator(d):
            image = d[key]
            if not isinstance(image, MetaTensor):
                raise TypeError(f"{key}: expected a MetaTensor to carry {self.items}, got {type(image).__name__}.")
            meta = {**image.meta, **{item: d[item] for item in self.items if item in d}}
            # a new MetaTensor on the same pixels: the input's meta data stay as they were
            d[key] = MetaTensor(image.as_tensor(), meta=meta, applied_operations=list(image.applied_operations))
        return d


def source_file(data: object, keys: Sequence[Hashable] = ("image",)) -> str | None:
    """The file the sample ``data`` came from: its ``source_file`` entry, else the first of ``keys`` that is a path
    or whose meta data (MetaTensor ``.meta`` or ``<key>_meta_dict``) holds ``filename_or_obj``; None if none does."""
    if not isinstance(data, Mapping):
        return None
    if isinstance(data.get(SOURCE_KEY), str):
        return data[SOURCE_KEY]
    for key in keys:
        value = data.get(key)
        if isinstance(value, (str, os.PathLike)):
            return str(value)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, os.PathLike)) for v in value):
            return str(value[0])
        meta = getattr(value, "meta", None) or data.get(f"{key}_meta_dict") or {}
        source = meta.get("filename_or_obj") if isinstance(meta, Mapping) else None
        if isinstance(source, (list, tuple)):
            source = source[0] if source else None
        if source:
            return str(source)
    return None
