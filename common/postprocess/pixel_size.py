"""A prediction made at the training pixel size put back on the input's grid (the inverse of
:class:`common.transforms.MatchPixelSize`)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type

from common.transforms.base import ArrayMapTransform
from common.transforms.pixel_size import INPUT_SHAPE_KEY, resample_spatial

__all__ = ["ResampleToInputGrid", "ResampleToInputGridd"]


class ResampleToInputGrid(Transform):
    """(C, h, w) prediction at the training pixel size -> (C, H, W) on the input's grid.

    ``(H, W)`` is the meta ``input_spatial_shape`` :class:`common.transforms.MatchPixelSize` recorded, taken from
    ``meta`` when given, else from the prediction's own meta data. ``mode`` ``"nearest-exact"`` (the default)
    keeps label ids; ``"bilinear"`` suits probabilities and fluorescence (smoothed first where the grid shrinks).
    Keeps the type, dtype, device and meta data of the input.

    Raises:
        ValueError: no ``input_spatial_shape`` to go back to, or not a (C, h, w) array.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, mode: str = "nearest-exact") -> None:
        self.mode = mode

    def __call__(self, pred: NdarrayOrTensor, meta: Mapping | None = None) -> NdarrayOrTensor:
        if pred.ndim != 3:
            raise ValueError(f"pred: expected a channel-first (C, H, W) prediction, got shape {tuple(pred.shape)}.")
        meta = meta if meta is not None else getattr(pred, "meta", {})
        shape = meta.get(INPUT_SHAPE_KEY)
        if shape is None:
            raise ValueError(
                f"no '{INPUT_SHAPE_KEY}' in the meta data of {meta.get('filename_or_obj', 'the prediction')}: "
                "common.transforms.MatchPixelSized must run in the preprocessing."
            )
        shape = [int(side) for side in np.ravel(shape.cpu() if isinstance(shape, torch.Tensor) else shape)]
        tensor = pred.as_tensor() if isinstance(pred, MetaTensor) else torch.as_tensor(pred)
        nearest = self.mode.startswith("nearest")
        resized = resample_spatial(tensor, shape, self.mode, anti_aliasing=not nearest)
        if isinstance(pred, MetaTensor):
            return MetaTensor(resized, meta=dict(pred.meta), applied_operations=list(pred.applied_operations))
        return convert_to_dst_type(resized, pred)[0]


class ResampleToInputGridd(ArrayMapTransform):
    """Dictionary version of :class:`ResampleToInputGrid`: the input grid comes from the meta data of
    ``data[reference_key]`` (the image, as the engines hand it on) or, without it, from each key's own."""

    backend = ResampleToInputGrid.backend

    def __init__(
        self,
        keys: KeysCollection,
        mode: str = "nearest-exact",
        reference_key: str = "image",
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, ResampleToInputGrid(mode), output_keys, allow_missing_keys)
        self.reference_key = reference_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        reference = getattr(d.get(self.reference_key), "meta", None)
        meta = reference if reference is not None and INPUT_SHAPE_KEY in reference else None
        for key, output_key in self.key_iterator(d, self.output_keys):
            d[output_key] = self.apply(key, d[key], meta)
        return d
