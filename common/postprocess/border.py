"""Removal of the instances touching the image border, which the NeurIPS 2022 cell segmentation challenge
metric applies to prediction and ground truth before matching. Backend: NumPy
(:func:`common.ops.remove_border_instances`); the result has the input's type, dtype and device."""

from __future__ import annotations

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from common.ops import remove_border_instances
from common.transforms.base import ArrayMapTransform

__all__ = ["RemoveBorderInstances", "RemoveBorderInstancesd"]


class RemoveBorderInstances(Transform):
    """(1, H, W) integer instance labels -> the same without the instances within ``width`` pixels of the
    image edge; other ids kept."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, width: int = 2) -> None:
        self.width = width

    def __call__(self, labels: NdarrayOrTensor) -> NdarrayOrTensor:
        x = convert_to_tensor(labels, track_meta=False)
        if x.ndim != 3 or x.shape[0] != 1 or x.is_floating_point() or x.dtype == torch.bool:
            raise ValueError(f"labels: expected (1, H, W) integer instance labels, got {tuple(x.shape)} of {x.dtype}.")
        out = torch.as_tensor(remove_border_instances(x[0], self.width), device=x.device)[None]
        return convert_to_dst_type(out, labels)[0]


class RemoveBorderInstancesd(ArrayMapTransform):
    """Dictionary version of :class:`RemoveBorderInstances` (for example on ``["pred", "label"]``)."""

    backend = RemoveBorderInstances.backend

    def __init__(
        self,
        keys: KeysCollection,
        width: int = 2,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RemoveBorderInstances(width), output_keys, allow_missing_keys)
