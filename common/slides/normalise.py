"""A bundle's preprocessing with its whole-image statistics fixed to those of a whole slide.

Bundles normalise each image by statistics of the whole image (percentiles, mean and std, minimum and maximum).
A block of a slide must be normalised by the slide's statistics, not its own, to equal the in-memory result:
:func:`with_image_statistics` computes them once over the slide (:mod:`common.slides.statistics`, exact, block by
block) through the transforms that come before the normalising one, and returns the preprocessing with each
normalising transform given them. A transform that normalises by whole-image statistics in a way not listed here
is refused rather than silently computed per block.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
from monai.transforms import (
    Compose,
    HistogramNormalized,
    NormalizeIntensityd,
    ScaleIntensityd,
    ScaleIntensityRanged,
    ScaleIntensityRangePercentilesd,
)

from common.transforms import NonZeroPercentileNormalized, ScalePercentilesd, Whitend

from .statistics import KeyPrefix, image_statistics

__all__ = ["with_image_statistics"]

logger = logging.getLogger(__name__)

#: MONAI transforms that use whole-image statistics and have no blockwise form here
UNSUPPORTED = (HistogramNormalized, ScaleIntensityRangePercentilesd)


def with_image_statistics(preprocessing: Compose, array, image_key: str = "image") -> Compose:
    """``preprocessing`` (dictionary transforms after loading) with its normalisation fixed to the statistics of
    the (C, Y, X) dask ``array``, as the transforms would compute them on the whole image read as float32."""
    transforms = list(preprocessing.transforms)
    pixels = array.astype(np.float32)  # what the bundle's LoadImaged gives the transforms
    for index, transform in enumerate(transforms):
        fixed = _fixed(transform, pixels, KeyPrefix(transforms[:index], key=image_key), image_key)
        if fixed is not transform:
            logger.info("%s: normalised by the whole slide's statistics", type(transform).__name__)
            transforms[index] = fixed
    result = copy.copy(preprocessing)
    result.transforms = tuple(transforms)
    return result


def _fixed(transform: Any, pixels, prefix: KeyPrefix, image_key: str) -> Any:
    """``transform`` with the slide's statistics, a replacement for it, or itself when it needs none."""
    if not _reads(transform, image_key):
        return transform
    if isinstance(transform, UNSUPPORTED) or (
        isinstance(transform, NormalizeIntensityd)
        and (transform.normalizer.subtrahend is None or transform.normalizer.divisor is None)
    ):
        raise ValueError(f"{type(transform).__name__} normalises by whole-image statistics, not supported blockwise.")
    if isinstance(transform, ScaleIntensityd):
        scaler = transform.scaler
        if scaler.minv is None or scaler.maxv is None or scaler.channel_wise:
            raise ValueError("ScaleIntensityd blockwise needs minv and maxv, and channel_wise=False.")
        a_min, a_max = image_statistics(pixels, prefix, "min_max")
        return ScaleIntensityRanged(
            transform.keys, float(a_min), float(a_max), scaler.minv, scaler.maxv, dtype=scaler.dtype
        )
    if isinstance(transform, (ScalePercentilesd, NonZeroPercentileNormalized, Whitend)):
        inner: Any = transform.transform
        if isinstance(transform, ScalePercentilesd):
            statistics = image_statistics(pixels, prefix, "percentiles", lower=inner.lower, upper=inner.upper)
        elif isinstance(transform, NonZeroPercentileNormalized):
            statistics = image_statistics(
                pixels,
                prefix,
                "nonzero_percentiles",
                lower=inner.lower,
                upper=inner.upper,
                channel_wise=inner.channel_wise,
            )
        else:
            statistics = image_statistics(pixels, prefix, "mean_std")
        fixed = copy.deepcopy(transform)
        fixed.transform.statistics = statistics  # type: ignore[attr-defined]
        return fixed
    return transform


def _reads(transform: Any, image_key: str) -> bool:
    return image_key in tuple(getattr(transform, "keys", ()))
