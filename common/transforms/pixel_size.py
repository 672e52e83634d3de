"""Resampling an image to the physical pixel size a network was trained at.

:class:`MatchPixelSize` scales a ``(C, H, W)`` image by ``input pixel size / training pixel size`` and records
the input's ``(H, W)`` in the meta data, where :class:`common.postprocess.ResampleToInputGrid` finds it to put
the prediction back on the input's grid. The pair is used instead of MONAI's ``Spacingd`` + ``Invertd``: the
collection's images carry their pixel size in meta ``pixel_size_um`` (not in the affine), and ``Invertd``
undoes every traced transform of the preprocessing at once, where a bundle needs the prediction back on the
input grid at one chosen step (after its post-processing has run at the training pixel size).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Resize, Transform
from monai.utils import TransformBackends

from .base import ArrayMapTransform

__all__ = [
    "INPUT_SHAPE_KEY",
    "NETWORK_PIXEL_SIZE_KEY",
    "MatchPixelSize",
    "MatchPixelSized",
    "pixel_size_pair",
    "resample_spatial",
]

#: meta data key of the input's ``(H, W)`` before :class:`MatchPixelSize`
INPUT_SHAPE_KEY = "input_spatial_shape"
#: meta data key of the pixel size ``(y_um, x_um)`` the image was resampled to
NETWORK_PIXEL_SIZE_KEY = "network_pixel_size_um"


def pixel_size_pair(value, name: str) -> tuple[float, float] | None:
    """``(y_um, x_um)`` of a pixel size given as one number, a pair, an array or a tensor; None for None or NaN.

    Raises:
        ValueError: not one or two positive finite numbers (the message names ``name``).
    """
    if value is None:
        return None
    sizes = np.ravel(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value, float))
    if sizes.size == 1:
        sizes = np.repeat(sizes, 2)
    if sizes.size != 2:
        raise ValueError(f"{name}: expected a pixel size (y_um, x_um) or one number, got {value!r}.")
    if np.isnan(sizes).any():
        return None
    if not (np.isfinite(sizes).all() and (sizes > 0).all()):
        raise ValueError(f"{name}: expected positive micrometres, got {value!r}.")
    return float(sizes[0]), float(sizes[1])


def resample_spatial(image: torch.Tensor, shape: Sequence[int], mode: str, anti_aliasing: bool) -> torch.Tensor:
    """(C, H, W) tensor -> (C, h, w) by MONAI's ``Resize``, as a plain tensor of the input's dtype and device.

    ``mode`` ``"nearest-exact"`` keeps values (labels; integer dtypes are resampled exactly through float64);
    the others interpolate in float32. ``anti_aliasing`` smooths before shrinking (MONAI's Gaussian).
    """
    shape = tuple(int(side) for side in shape)
    if tuple(image.shape[1:]) == shape:
        return image.clone()
    integer = not (image.is_floating_point() or image.is_complex())
    work = image.to(torch.float64 if integer else torch.float32)
    resize = Resize(shape, mode=mode, anti_aliasing=anti_aliasing, dtype=work.dtype)
    resized = resize(work)
    resized = resized.as_tensor() if isinstance(resized, MetaTensor) else resized
    return (resized.round() if integer else resized).to(image.dtype)


class MatchPixelSize(Transform):
    """(C, H, W) image at its pixel size -> (C, h, w) at ``target_um``: h = round(H * y_um / target_y), same for w.

    The input pixel size is the ``pixel_size`` argument when given, else the image's meta ``pixel_size_um``
    (``common.io.MicroscopyReader`` reads it from OME, ImageJ and TIFF resolution tags). The result is a
    MetaTensor whose meta data keep the input's (``pixel_size_um`` still describes the input file, so that
    writers give outputs the input's pixel size) plus ``input_spatial_shape`` ``(H, W)`` and
    ``network_pixel_size_um``. Values are interpolated linearly (``mode``), smoothed first where the image
    shrinks (``anti_aliasing``); dtype and device are kept for float images, integer images come back as
    float32.

    Args:
        target_um: the training pixel size, one number or ``(y_um, x_um)``.
        mode: MONAI ``Resize`` interpolation, ``"bilinear"`` by default.
        anti_aliasing: Gaussian smoothing before shrinking.

    Raises:
        ValueError: no target (the bundle's training pixel size is unknown), at construction; an image without a
            pixel size (naming its file) and none given.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, target_um, mode: str = "bilinear", anti_aliasing: bool = True) -> None:
        target = pixel_size_pair(target_um, "target_um")
        if target is None:
            raise ValueError(
                "target_um: the pixel size the network was trained at is unknown (training_pixel_size is null; the "
                "bundle's metadata says why); give it in micrometres, [y, x], to match pixel sizes."
            )
        self.target, self.mode, self.anti_aliasing = target, mode, anti_aliasing

    def __call__(self, image: NdarrayOrTensor, pixel_size=None) -> MetaTensor:
        if image.ndim != 3:
            raise ValueError(f"image: expected a channel-first (C, H, W) image, got shape {tuple(image.shape)}.")
        meta = dict(image.meta) if isinstance(image, MetaTensor) else {}
        source = meta.get("filename_or_obj", "the image")
        size = pixel_size_pair(pixel_size, "input_pixel_size")
        size = size or pixel_size_pair(meta.get("pixel_size_um"), f"{source}: pixel_size_um")
        if size is None:
            raise ValueError(
                f"{source}: the file stores no pixel size (OME PhysicalSizeX/Y, ImageJ or TIFF resolution); "
                "give it as input_pixel_size (micrometres, [y, x]) or switch match_pixel_size off."
            )
        height, width = (int(side) for side in image.shape[1:])
        shape = (
            max(1, round(height * size[0] / self.target[0])),
            max(1, round(width * size[1] / self.target[1])),
        )
        tensor = image.as_tensor() if isinstance(image, MetaTensor) else torch.as_tensor(image)
        if not tensor.is_floating_point():
            tensor = tensor.float()
        anti_aliasing = self.anti_aliasing and (shape[0] < height or shape[1] < width)
        resized = resample_spatial(tensor, shape, self.mode, anti_aliasing)
        meta.update(
            {
                INPUT_SHAPE_KEY: np.asarray((height, width)),
                NETWORK_PIXEL_SIZE_KEY: np.asarray(self.target),
                "pixel_size_um": np.asarray(size),
            }
        )
        operations = list(image.applied_operations) if isinstance(image, MetaTensor) else []
        return MetaTensor(resized, meta=meta, applied_operations=operations)


class MatchPixelSized(ArrayMapTransform):
    """Dictionary version of :class:`MatchPixelSize`; ``pixel_size`` (one for all keys, e.g. a bundle's
    ``input_pixel_size``) overrides the files' own, None reads each image's meta ``pixel_size_um``."""

    backend = MatchPixelSize.backend

    def __init__(
        self,
        keys: KeysCollection,
        target_um,
        pixel_size=None,
        mode: str = "bilinear",
        anti_aliasing: bool = True,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, MatchPixelSize(target_um, mode, anti_aliasing), output_keys, allow_missing_keys)
        self.pixel_size = pixel_size

    def apply(self, key, value, *args, **kwargs):
        return super().apply(key, value, self.pixel_size)
