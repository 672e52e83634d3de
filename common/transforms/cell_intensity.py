"""Intensity transforms of MEDIAR: percentile normalisation over non-zero pixels, and cell-aware intensity
diversification (a random subset of cells brightened). Backend: torch on the input's device; NumPy input is
returned as NumPy."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import RandomizableTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor

from common.ops import percentile

from .base import ArrayMapTransform, RandArrayMapTransform

__all__ = [
    "NonZeroPercentileNormalize",
    "NonZeroPercentileNormalized",
    "RandCellAwareIntensity",
    "RandCellAwareIntensityd",
]


class NonZeroPercentileNormalize(Transform):
    """(C, H, W) image -> float32 in [0, 1]: ``(x - p_lower) / (p_upper - p_lower)``, clipped, where the
    percentiles are taken over the image's non-zero pixels (all channels together, or each channel).

    MEDIAR (lower 0, upper 99.5) stores the result as uint8 (values floored to multiples of 1/255) and then
    rescales min-max, which changes nothing because the least non-zero pixel maps to 0 and the brightest to 1;
    ``levels=256`` reproduces the 8-bit steps, ``levels=None`` keeps full precision. An image without
    non-zero pixels, or whose non-zero pixels are all equal, becomes zeros.

    Args:
        lower, upper: percentiles in [0, 100] mapped to 0 and 1.
        channel_wise: percentiles of each channel (channels without non-zero pixels stay 0).
        levels: number of grey levels of the output (values floored to multiples of ``1 / (levels - 1)``), or None.
        statistics: None, or precomputed (p_lower, p_upper): (2,), or (C, 2) with ``channel_wise`` (a whole
            slide's, from :func:`common.slides.percentiles` with ``nonzero=True``), used instead of the image's
            own; NaN values (no non-zero pixels) give zeros.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        lower: float = 0.0,
        upper: float = 99.5,
        channel_wise: bool = False,
        levels: int | None = 256,
        statistics=None,
    ) -> None:
        if not 0.0 <= lower < upper <= 100.0:
            raise ValueError(f"lower, upper: expected 0 <= lower < upper <= 100, got {lower}, {upper}.")
        if levels is not None and levels < 2:
            raise ValueError(f"levels: expected at least 2 grey levels or None, got {levels}.")
        self.lower, self.upper, self.channel_wise, self.levels = lower, upper, channel_wise, levels
        self.statistics = statistics

    def _scale(self, x: torch.Tensor, bounds: torch.Tensor | None) -> torch.Tensor:
        if bounds is None:
            values = x[x != 0]
            if values.numel() == 0:
                return torch.zeros_like(x)
            low, high = percentile(values, self.lower), percentile(values, self.upper)
        else:
            low, high = bounds[0], bounds[1]
        if not high > low:
            return torch.zeros_like(x)
        out = ((x - low) / (high - low)).clamp(0.0, 1.0)
        if self.levels is not None:
            out = torch.floor(out * (self.levels - 1)) / (self.levels - 1)
        return out

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        x = convert_to_tensor(img, track_meta=False)
        if x.ndim != 3:
            raise ValueError(f"image: expected a channel-first (C, H, W) image, got shape {tuple(x.shape)}.")
        x = x.to(torch.float64 if x.dtype in (torch.int64, torch.int32, torch.float64) else torch.float32)
        bounds = None if self.statistics is None else torch.as_tensor(self.statistics, dtype=x.dtype, device=x.device)
        expected = (x.shape[0], 2) if self.channel_wise else (2,)
        if bounds is not None and tuple(bounds.shape) != expected:
            raise ValueError(
                f"statistics: expected (p_lower, p_upper) of shape {expected} (channel_wise={self.channel_wise}), "
                f"got shape {tuple(bounds.shape)}."
            )
        if self.channel_wise:
            out = torch.stack([self._scale(c, None if bounds is None else bounds[i]) for i, c in enumerate(x)])
        else:
            out = self._scale(x, bounds)
        return convert_to_dst_type(out, img, dtype=torch.float32)[0]


class NonZeroPercentileNormalized(ArrayMapTransform):
    """Dictionary version of :class:`NonZeroPercentileNormalize`; ``output_keys`` (default ``keys``) receive it."""

    backend = NonZeroPercentileNormalize.backend

    def __init__(
        self,
        keys: KeysCollection,
        lower: float = 0.0,
        upper: float = 99.5,
        channel_wise: bool = False,
        levels: int | None = 256,
        statistics=None,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = NonZeroPercentileNormalize(lower, upper, channel_wise, levels, statistics)
        super().__init__(keys, transform, output_keys, allow_missing_keys)


class RandCellAwareIntensity(RandomizableTransform):
    """Cell intensity diversification (MEDIAR): with probability ``prob``, the pixels of a random ``fraction``
    of the cells are multiplied by one factor ``1 + f``, ``f`` uniform in ``factors``.

    Call with a (C, H, W) image and its (1, H, W) instance labels (0 background; negative ids, as
    :class:`common.transforms.BoundaryExclusion` writes for ignored pixels, are not cells). Returns the image
    (float, of the image's type and device); pixels outside the chosen cells and the labels are untouched.
    ``int(fraction * number of cells)`` cells are chosen, without replacement.

    Args:
        prob: probability of changing the image at all (MEDIAR's table: 0.25; its code applies it always).
        fraction: fraction of cells changed (MEDIAR: 0.4).
        factors: range of ``f`` (MEDIAR: 0 to 0.7, so cells get up to 70 % brighter).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, prob: float = 0.25, fraction: float = 0.4, factors: Sequence[float] = (0.0, 0.7)) -> None:
        RandomizableTransform.__init__(self, prob)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction: expected a fraction of cells in [0, 1], got {fraction}.")
        if len(factors) != 2 or factors[0] > factors[1]:
            raise ValueError(f"factors: expected a (low, high) range, got {factors}.")
        self.fraction = fraction
        self.factors = (float(factors[0]), float(factors[1]))
        self._cells = torch.zeros(0, dtype=torch.int64)
        self._scale = 1.0

    def randomize(self, labels) -> None:
        """Draw whether to act, which cells of ``labels`` and the factor."""
        super().randomize(None)
        if not self._do_transform:
            return
        ids = torch.unique(convert_to_tensor(labels, track_meta=False))
        ids = ids[ids > 0]
        count = int(self.fraction * ids.numel())
        chosen = self.R.choice(ids.numel(), count, replace=False)
        self._cells = ids[torch.as_tensor(chosen, dtype=torch.int64, device=ids.device)]
        self._scale = 1.0 + self.R.uniform(*self.factors)

    def __call__(  # type: ignore[override]  # MONAI's Transform.__call__(data) takes one argument
        self, img: NdarrayOrTensor, labels: NdarrayOrTensor, randomize: bool = True
    ) -> NdarrayOrTensor:
        if randomize:
            self.randomize(labels)
        x = convert_to_tensor(img, track_meta=False)
        if not x.is_floating_point():
            x = x.to(torch.float32)
        lab = convert_to_tensor(labels, track_meta=False)
        if lab.ndim != 3 or lab.shape[0] != 1 or x.ndim != 3 or lab.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"image and labels: expected (C, H, W) and (1, H, W) of one size, "
                f"got {tuple(x.shape)} and {tuple(lab.shape)}."
            )
        if self._do_transform and self._cells.numel():
            chosen = torch.isin(lab, self._cells.to(lab.device, lab.dtype))
            x = torch.where(chosen, x * self._scale, x)
        return convert_to_dst_type(x, img, dtype=x.dtype)[0]


class RandCellAwareIntensityd(RandomizableTransform, RandArrayMapTransform):
    """Dictionary version of :class:`RandCellAwareIntensity`: the image ``keys`` change, ``label_key`` chooses
    the cells.

    Several image keys get the same cells and factor.
    """

    backend = RandCellAwareIntensity.backend
    transform: RandCellAwareIntensity

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        prob: float = 0.25,
        fraction: float = 0.4,
        factors: Sequence[float] = (0.0, 0.7),
        allow_missing_keys: bool = False,
    ) -> None:
        transform = RandCellAwareIntensity(prob=1.0, fraction=fraction, factors=factors)
        RandArrayMapTransform.__init__(self, keys, transform, allow_missing_keys=allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.label_key = label_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        if self.label_key not in d:
            raise KeyError(f"label_key: {self.label_key!r} not in the data, expected instance labels there.")
        self.transform.randomize(d[self.label_key])
        for key, output_key in self.key_iterator(d, self.output_keys):
            d[output_key] = self.apply(key, d[key], d[self.label_key], randomize=False)
        return d
