"""Per-image intensity transforms: whitening, scaling by two percentiles, and quantisation to n bits.

Statistics are taken per channel over the last two (spatial) axes (:mod:`common.ops`). Backend: torch on the
input's device; NumPy input is returned as NumPy, integer images as float32.
"""

from __future__ import annotations

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type

from common.ops import scale_percentiles, whiten
from common.ops.intensity import as_float_image

from .base import ArrayMapTransform

__all__ = ["quantise", "Whiten", "Whitend", "ScalePercentiles", "ScalePercentilesd", "Quantise", "Quantised"]


def quantise(image, bits: int | None = 8) -> torch.Tensor:
    """Round an image in [0, 1] to ``2**bits`` levels and back: ``round(x * (2**bits - 1)) / (2**bits - 1)``.

    This is what storing a [0, 1] image as an n-bit file (scikit-image's ``img_as_ubyte`` for 8 bits, which
    rounds half to even as ``torch.round`` does) and dividing by ``2**bits - 1`` when reading it gives.

    Args:
        image: (..., H, W) tensor with values in [0, 1] (clip first).
        bits: bits per pixel of the emulated file, 1 to 16; ``None`` returns the image unchanged (as float).

    Returns:
        tensor of the shape of ``image``, float.
    """
    if bits is not None and not (isinstance(bits, int) and 1 <= bits <= 16):
        raise ValueError(f"bits: expected an integer from 1 to 16 or None, got {bits!r}.")
    image = as_float_image(image)
    if bits is None:
        return image
    if image.numel() and (image.min() < 0 or image.max() > 1):
        raise ValueError(
            f"image: expected values in [0, 1] to quantise, got [{image.min().item()}, {image.max().item()}];"
            " clip first."
        )
    levels = 2**bits - 1
    return torch.round(image * levels) / levels


class Whiten(Transform):
    """Array transform: (C, H, W) image -> each channel standardised by its own mean and std (see
    :func:`common.ops.whiten`), or by ``statistics``: precomputed (mean, std) per channel, (C, 2) (a whole
    slide's, from :func:`common.slides.mean_std`)."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, epsilon: float = 1e-6, statistics=None) -> None:
        self.epsilon, self.statistics = epsilon, statistics

    def __call__(self, image: NdarrayOrTensor) -> NdarrayOrTensor:
        return convert_to_dst_type(whiten(image, self.epsilon, self.statistics), image, dtype=torch.float32)[0]


class ScalePercentiles(Transform):
    """Array transform: (C, H, W) image -> each channel scaled by two of its percentiles
    (:func:`common.ops.scale_percentiles`).

    Unlike MONAI's ``ScaleIntensityRangePercentiles`` (which warns and leaves ``x - p_lower`` unscaled, or
    divides by zero), the case of coinciding percentiles is defined by ``constant``. ``statistics``: None, or
    precomputed (p_lower, p_upper) per channel, (C, 2) (a whole slide's, from :func:`common.slides.percentiles`),
    used instead of the image's own.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self, lower: float, upper: float, clip: bool = False, constant: str = "shift", statistics=None
    ) -> None:
        scale_percentiles(torch.zeros(1, 1), lower, upper, clip, constant)  # validates the arguments
        self.lower, self.upper, self.clip, self.constant = lower, upper, clip, constant
        self.statistics = statistics

    def __call__(self, image: NdarrayOrTensor) -> NdarrayOrTensor:
        scaled = scale_percentiles(image, self.lower, self.upper, self.clip, self.constant, self.statistics)
        return convert_to_dst_type(scaled, image, dtype=torch.float32)[0]


class Quantise(Transform):
    """Array transform: (C, H, W) image in [0, 1] -> the same rounded to ``2**bits`` levels (:func:`quantise`).

    After ``ScalePercentiles(..., clip=True)`` it reproduces inputs stored as n-bit files, such as the DSB
    method's 8-bit ``norm_images``.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, bits: int | None = 8) -> None:
        quantise(torch.zeros(1, 1), bits)  # validates the argument
        self.bits = bits

    def __call__(self, image: NdarrayOrTensor) -> NdarrayOrTensor:
        return convert_to_dst_type(quantise(image, self.bits), image, dtype=torch.float32)[0]


class Whitend(ArrayMapTransform):
    """Dictionary version of :class:`Whiten`."""

    backend = Whiten.backend

    def __init__(
        self,
        keys: KeysCollection,
        epsilon: float = 1e-6,
        statistics=None,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, Whiten(epsilon, statistics), output_keys, allow_missing_keys)


class ScalePercentilesd(ArrayMapTransform):
    """Dictionary version of :class:`ScalePercentiles`."""

    backend = ScalePercentiles.backend

    def __init__(
        self,
        keys: KeysCollection,
        lower: float,
        upper: float,
        clip: bool = False,
        constant: str = "shift",
        statistics=None,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = ScalePercentiles(lower, upper, clip, constant, statistics)
        super().__init__(keys, transform, output_keys, allow_missing_keys)


class Quantised(ArrayMapTransform):
    """Dictionary version of :class:`Quantise`."""

    backend = Quantise.backend

    def __init__(
        self,
        keys: KeysCollection,
        bits: int | None = 8,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, Quantise(bits), output_keys, allow_missing_keys)
