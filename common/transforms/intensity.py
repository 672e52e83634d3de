"""Per-image intensity normalisation: whitening, scaling by two percentiles, and quantisation to n bits.

Statistics are taken per channel over the last two (spatial) axes, so the functions take ``(H, W)``,
``(C, H, W)`` or ``(B, C, H, W)`` tensors alike and keep their device. Integer images come back as float32.
"""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type

__all__ = [
    "percentile",
    "whiten",
    "scale_percentiles",
    "quantise",
    "Whiten",
    "Whitend",
    "ScalePercentiles",
    "ScalePercentilesd",
    "Quantise",
    "Quantised",
]


def _as_float(image) -> torch.Tensor:
    image = torch.as_tensor(image)
    if image.ndim < 2:
        raise ValueError(f"image: expected (..., H, W), got shape {tuple(image.shape)}.")
    return image if image.is_floating_point() else image.to(torch.float32)


def percentile(image, q: float) -> torch.Tensor:
    """``q``-th percentile (0 to 100) of each ``(H, W)`` plane, interpolated linearly as ``np.percentile`` does.

    Args:
        image: (..., H, W) tensor.
        q: percentile in [0, 100].

    Returns:
        (..., 1, 1) tensor of the image's float dtype, on its device.
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q: expected a percentile in [0, 100], got {q}.")
    image = _as_float(image)
    flat = image.flatten(-2)
    position = q / 100.0 * (flat.shape[-1] - 1)
    below = int(np.floor(position))
    above = min(below + 1, flat.shape[-1] - 1)
    # k-th smallest values (1-based k): linear time, any size (torch.quantile stops at 2**24 elements)
    low = flat.kthvalue(below + 1, dim=-1, keepdim=True).values
    high = flat.kthvalue(above + 1, dim=-1, keepdim=True).values if above != below else low
    return torch.lerp(low, high, position - below).unsqueeze(-1)


def whiten(image, epsilon: float = 1e-6) -> torch.Tensor:
    """``(x - mean) / max(std, epsilon)`` per ``(H, W)`` plane, std with Bessel's correction (torch's default).

    This is the per-image standardisation of the LMC method (``torchvision`` ``normalize`` by the image's own
    mean and standard deviation, the deviation floored at ``epsilon``); a constant plane becomes zeros.
    """
    image = _as_float(image)
    mean = image.mean(dim=(-2, -1), keepdim=True)
    std = image.std(dim=(-2, -1), keepdim=True) if image.shape[-2:].numel() > 1 else torch.zeros_like(mean)
    return (image - mean) / std.clamp_min(epsilon)


def scale_percentiles(
    image, lower: float, upper: float, clip: bool = False, constant: str = "shift"
) -> torch.Tensor:
    """``(x - p_lower) / (p_upper - p_lower)`` per ``(H, W)`` plane, optionally clipped to [0, 1].

    Args:
        image: (..., H, W) tensor.
        lower, upper: percentiles (0 to 100, ``lower < upper``).
        clip: clip the result to [0, 1].
        constant: what a plane whose two percentiles coincide (at least ``upper - lower`` % of its pixels
            share one value) becomes, where the division is undefined: ``"shift"`` gives ``x - p_lower``
            (zero on the common value), ``"keep"`` gives the plane unchanged, as the Light My Cells
            evaluator does.

    Returns:
        tensor of the shape of ``image``, float.
    """
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(f"lower, upper: expected 0 <= lower < upper <= 100, got {lower}, {upper}.")
    if constant not in ("shift", "keep"):
        raise ValueError(f"constant: expected 'shift' or 'keep', got {constant!r}.")
    image = _as_float(image)
    low, high = percentile(image, lower), percentile(image, upper)
    span = high - low
    degenerate = span == 0
    scaled = (image - low) / torch.where(degenerate, torch.ones_like(span), span)
    if constant == "keep":
        scaled = torch.where(degenerate, image, scaled)
    return scaled.clamp(0.0, 1.0) if clip else scaled


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
    image = _as_float(image)
    if bits is None:
        return image
    if image.numel() and (image.min() < 0 or image.max() > 1):
        raise ValueError(
            f"image: expected values in [0, 1] to quantise, got [{image.min().item()}, {image.max().item()}]; clip first."
        )
    levels = 2**bits - 1
    return torch.round(image * levels) / levels


class Whiten(Transform):
    """Array transform: (C, H, W) image -> each channel standardised by its own mean and std (see :func:`whiten`)."""

    backend = [torch.Tensor, np.ndarray]

    def __init__(self, epsilon: float = 1e-6) -> None:
        self.epsilon = epsilon

    def __call__(self, image):
        return convert_to_dst_type(whiten(image, self.epsilon), image, dtype=torch.float32)[0]


class ScalePercentiles(Transform):
    """Array transform: (C, H, W) image -> each channel scaled by two of its percentiles (:func:`scale_percentiles`).

    Unlike MONAI's ``ScaleIntensityRangePercentiles`` (which warns and leaves ``x - p_lower`` unscaled, or
    divides by zero), the case of coinciding percentiles is defined by ``constant``.
    """

    backend = [torch.Tensor, np.ndarray]

    def __init__(self, lower: float, upper: float, clip: bool = False, constant: str = "shift") -> None:
        scale_percentiles(torch.zeros(1, 1), lower, upper, clip, constant)  # validates the arguments
        self.lower, self.upper, self.clip, self.constant = lower, upper, clip, constant

    def __call__(self, image):
        scaled = scale_percentiles(image, self.lower, self.upper, self.clip, self.constant)
        return convert_to_dst_type(scaled, image, dtype=torch.float32)[0]


class Quantise(Transform):
    """Array transform: (C, H, W) image in [0, 1] -> the same rounded to ``2**bits`` levels (:func:`quantise`).

    After ``ScalePercentiles(..., clip=True)`` it reproduces inputs stored as n-bit files, such as the DSB
    method's 8-bit ``norm_images``.
    """

    backend = [torch.Tensor, np.ndarray]

    def __init__(self, bits: int | None = 8) -> None:
        quantise(torch.zeros(1, 1), bits)  # validates the argument
        self.bits = bits

    def __call__(self, image):
        return convert_to_dst_type(quantise(image, self.bits), image, dtype=torch.float32)[0]


class _ArrayTransformd(MapTransform):
    """Applies one array transform to every key."""

    def __init__(self, keys: KeysCollection, transform: Transform, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = transform

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class Whitend(_ArrayTransformd):
    """Dictionary wrapper of :class:`Whiten`."""

    backend = Whiten.backend

    def __init__(self, keys: KeysCollection, epsilon: float = 1e-6, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, Whiten(epsilon), allow_missing_keys)


class ScalePercentilesd(_ArrayTransformd):
    """Dictionary wrapper of :class:`ScalePercentiles`."""

    backend = ScalePercentiles.backend

    def __init__(
        self,
        keys: KeysCollection,
        lower: float,
        upper: float,
        clip: bool = False,
        constant: str = "shift",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, ScalePercentiles(lower, upper, clip, constant), allow_missing_keys)


class Quantised(_ArrayTransformd):
    """Dictionary wrapper of :class:`Quantise`."""

    backend = Quantise.backend

    def __init__(self, keys: KeysCollection, bits: int | None = 8, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, Quantise(bits), allow_missing_keys)
