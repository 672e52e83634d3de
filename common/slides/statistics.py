"""Whole-image intensity statistics of a lazy ``(C, Y, X)`` slide, computed block by block, equal to the ones the
normalising transforms compute on the whole image in memory.

Passing the results as ``statistics`` to the transform makes blockwise normalisation equal to in-memory
normalisation:

- ``common.transforms.ScalePercentiles(d)``: (C, 2) p_lower, p_upper per channel,
  ``image_statistics(array, prefix, "percentiles", lower=..., upper=...)``;
- ``common.transforms.NonZeroPercentileNormalize(d)``: (2,), or (C, 2) with ``channel_wise``,
  ``image_statistics(array, prefix, "nonzero_percentiles", lower=..., upper=...)``;
- ``common.transforms.Whiten(d)``: (C, 2) mean, std per channel, ``image_statistics(array, prefix, "mean_std")``;
- MONAI's ``ScaleIntensity(d)``: (2,) min, max, ``image_statistics(array, prefix, "min_max")``, used as ``a_min``,
  ``a_max`` of ``ScaleIntensityRange(d)`` (``b_min=0, b_max=1``), which then gives the same result (exactly for
  integer-valued images; for others ``a_max - a_min`` may round differently by an ulp).

The statistics are those of the *preprocessed* image: ``prefix_transform`` (the bundle's transforms before the
normalising one) is applied to each block first. It must be **pointwise** (each output pixel a function of the
input pixel at the same place only, e.g. ``AsChannels``, ``ScaleIntensityRange``, a type cast): resampling
(``MatchPixelSize``) or filtering would make block statistics differ from the whole image's, and a prefix that
changes a block's height or width is refused.

Exactness: percentiles are exact for every input. Integer-valued values in ``[-2**16, 2**16)`` (uint8, uint16,
int16, integer-valued float images) are counted value by value (``np.bincount`` per block, histograms merged) in
one pass; any other values by an exact radix selection on their floating-point bit patterns (16 bits per pass:
two passes over the slide for float32, four for float64, each with per-block 65536-bin histograms). The order
statistics are then interpolated with ``torch.lerp`` in the transform's own floating type exactly as
:func:`common.ops.percentile` does (NumPy's linear interpolation), so the values equal the in-memory ones bit for
bit on CPU (on CUDA, the in-memory ``torch.lerp`` may round differently by one ulp). Min/max are exact; mean and
std are accumulated in float64 (Chan's pairwise merge of per-block mean and squared deviations), as
:func:`common.ops.whiten` does, and rounded to the image's type by the transform.

Memory: blocks are read lazily and ``batch`` of them at a time (``dask.compute``, on the active scheduler or
``dask.distributed`` client); each contributes a few histograms of at most 2**17 bins. NaN values are refused
(ValueError naming the block).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose
from monai.utils import convert_to_numpy

__all__ = ["KeyPrefix", "image_statistics", "mean_std", "min_max", "percentiles"]

logger = logging.getLogger(__name__)

_DIGIT = 16  # bits resolved per radix pass
_OFFSET = 1 << 16  # integer-valued data in [-_OFFSET, _OFFSET) is counted value by value
_UNSIGNED = {2: np.uint16, 4: np.uint32, 8: np.uint64}

Prefix = Callable[[np.ndarray], Any] | None


class KeyPrefix:
    """A prefix of dictionary transforms as a callable on a (C, y, x) block: ``transforms({key: block})[key]``.

    For ``prefix_transform`` from a bundle's preprocessing (the pointwise transforms between its loader and its
    normalising transform). Picklable, so that it reaches ``dask.distributed`` workers.
    """

    def __init__(self, transforms: Sequence[Callable] | Callable, key: Hashable = "image") -> None:
        self.transforms = transforms if callable(transforms) else Compose(list(transforms))
        self.key = key

    def __call__(self, block: np.ndarray) -> Any:
        return self.transforms({self.key: block})[self.key]


def _float_image_dtype(dtype: np.dtype) -> np.dtype:
    """The type :func:`common.ops.intensity.as_float_image` gives: floating types stay, others become float32."""
    return np.dtype(dtype) if np.issubdtype(dtype, np.floating) else np.dtype(np.float32)


def _nonzero_dtype(dtype: np.dtype) -> np.dtype:
    """The type :class:`common.transforms.NonZeroPercentileNormalize` computes in."""
    wide = np.dtype(dtype) in (np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.float64))
    return np.dtype(np.float64 if wide else np.float32)


def _blocks(array) -> list[tuple[Any, tuple[int, int]]]:
    """The (C, y, x) blocks of ``array`` (all channels in each) as delayed objects, with their (y0, x0)."""
    # dask imported here, not at module level: bundles list only what their in-memory path imports (export check)
    import dask.array as da

    if not isinstance(array, da.Array):
        array = da.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"array: expected a channel-first (C, Y, X) image, got shape {tuple(array.shape)}.")
    if array.numblocks[0] > 1:
        array = array.rechunk({0: -1})
    starts = [np.concatenate([[0], np.cumsum(chunks)[:-1]]) for chunks in array.chunks[1:]]
    delayed = array.to_delayed()
    return [
        (delayed[0, i, j], (int(starts[0][i]), int(starts[1][j])))
        for i in range(array.numblocks[1])
        for j in range(array.numblocks[2])
    ]


def _map_reduce(array, function: Callable, merge: Callable, batch: int) -> Any:
    """``merge`` over blocks of ``function(block, (y0, x0))``, computed ``batch`` blocks at a time."""
    import dask

    if batch < 1:
        raise ValueError(f"batch: expected at least 1 block at a time, got {batch}.")
    blocks = _blocks(array)
    total = None
    for start in range(0, len(blocks), batch):
        tasks = [dask.delayed(function)(block, location) for block, location in blocks[start : start + batch]]
        for part in dask.compute(*tasks):
            total = part if total is None else merge(total, part)
    return total


def _prepared(block, location: tuple[int, int], prefix: Prefix) -> np.ndarray:
    """``prefix(block)`` as a (C, y, x) NumPy array, checked: same height and width, no NaN."""
    out = block if prefix is None else convert_to_numpy(prefix(block))
    if out.ndim != 3 or out.shape[1:] != block.shape[1:]:
        raise ValueError(
            f"prefix_transform: expected a pointwise transform of (C, y, x) blocks, got shape {tuple(out.shape)} "
            f"from the block of shape {tuple(block.shape)} at (y, x) = {location}."
        )
    if np.issubdtype(out.dtype, np.floating) and np.isnan(out).any():
        raise ValueError(
            f"image: NaN in the block at (y, x) = {location} (shape {tuple(out.shape)}); intensity statistics of "
            "an image with NaN are undefined: replace them first."
        )
    return out


def _groups(values: np.ndarray, channel_wise: bool) -> list[np.ndarray]:
    """Flat values of each channel, or of the whole block."""
    return [c.ravel() for c in values] if channel_wise else [values.ravel()]


def _keys(values: np.ndarray) -> np.ndarray:
    """Unsigned integers ordered as the floating-point ``values`` (-0.0 taken as 0.0)."""
    values = values + values.dtype.type(0)  # -0.0 + 0.0 == +0.0
    unsigned = _UNSIGNED[values.dtype.itemsize]
    bits = values.view(unsigned)
    top = unsigned(1 << (8 * values.dtype.itemsize - 1))
    return np.where(bits & top, ~bits, bits | top)


def _from_keys(keys: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`_keys`."""
    unsigned = _UNSIGNED[dtype.itemsize]
    keys = keys.astype(unsigned)
    top = 1 << (8 * dtype.itemsize - 1)
    return np.where(keys & unsigned(top), keys & unsigned(top - 1), ~keys).astype(unsigned).view(dtype)


def _digit(keys: np.ndarray, bits: int, resolved: int) -> np.ndarray:
    """The 16-bit digit of ``keys`` below their ``resolved`` top bits."""
    shift = keys.dtype.type(bits - resolved - _DIGIT)
    return ((keys >> shift) & keys.dtype.type(0xFFFF)).astype(np.intp)


def _first_pass(values: np.ndarray, integral: bool) -> dict:
    """Count of ``values`` and their histogram: by value if ``integral``, else by the top 16 bits of the key."""
    if integral:
        return {"count": values.size, "integral": np.bincount(values.astype(np.int64) + _OFFSET, minlength=2 * _OFFSET)}
    top = _digit(_keys(values), 8 * values.dtype.itemsize, 0)
    return {"count": values.size, "digits": np.bincount(top, minlength=1 << _DIGIT)}


def _as_digits(summary: dict, dtype: np.dtype) -> np.ndarray:
    """The top-digit histogram of a summary (derived from the value histogram of integral ones)."""
    if "digits" in summary:
        return summary["digits"]
    counts = summary["integral"]
    present = np.flatnonzero(counts)
    top = _digit(_keys((present - _OFFSET).astype(dtype)), 8 * dtype.itemsize, 0)
    return np.bincount(top, weights=counts[present], minlength=1 << _DIGIT).astype(np.int64)


def _merge_first(a: list[dict], b: list[dict], dtype: np.dtype) -> list[dict]:
    out = []
    for x, y in zip(a, b, strict=True):
        if "integral" in x and "integral" in y:
            out.append({"count": x["count"] + y["count"], "integral": x["integral"] + y["integral"]})
        else:
            out.append({"count": x["count"] + y["count"], "digits": _as_digits(x, dtype) + _as_digits(y, dtype)})
    return out


def _select(histogram: np.ndarray, rank: int) -> tuple[int, int]:
    """Bin holding the ``rank``-th (0-based) counted element, and its rank inside the bin."""
    cumulative = np.cumsum(histogram)
    index = int(np.searchsorted(cumulative, rank, side="right"))
    return index, rank - (int(cumulative[index - 1]) if index else 0)


def percentiles(
    array,
    q: Sequence[float],
    prefix_transform: Prefix = None,
    *,
    nonzero: bool = False,
    channel_wise: bool = True,
    dtype: Any = None,
    batch: int = 16,
) -> np.ndarray:
    """Percentiles of a lazy image, exactly those :func:`common.ops.percentile` gives on the whole image.

    Args:
        array: (C, Y, X) dask array (or array-like), read block by block.
        q: percentiles in [0, 100].
        prefix_transform: pointwise callable applied to each (C, y, x) block first (see the module), or None.
        nonzero: only the non-zero values (after conversion to ``dtype``), as
            :class:`~common.transforms.NonZeroPercentileNormalize` takes them.
        channel_wise: percentiles of each channel, or of all values together.
        dtype: floating type the values are converted to and interpolated in; None: that of the transform,
            from the (prefixed) block's type: float32 unless floating (:class:`~common.transforms.ScalePercentiles`),
            with ``nonzero`` float64 for int32, int64 and float64 (``NonZeroPercentileNormalize``).
        batch: blocks computed at a time.

    Returns:
        (C, len(q)) with ``channel_wise``, else (len(q),); float64 holding values of ``dtype``. A channel or image
        without (non-zero) values gives NaN, which the transforms map to zeros.
    """
    for value in q:
        if not 0.0 <= value <= 100.0:
            raise ValueError(f"q: expected percentiles in [0, 100], got {list(q)}.")
    rule = _nonzero_dtype if nonzero else _float_image_dtype

    def values_of(block, location) -> tuple[list[np.ndarray], bool]:
        out = _prepared(block, location, prefix_transform)
        target = np.dtype(dtype) if dtype is not None else rule(out.dtype)
        if not np.issubdtype(target, np.floating) or target.itemsize not in _UNSIGNED:
            raise ValueError(f"dtype: expected float16, float32 or float64, got {target}.")
        small_integers = (np.issubdtype(out.dtype, np.integer) and out.dtype.itemsize <= 2) or out.dtype == np.bool_
        values = out.astype(target)
        groups = [g[g != 0] for g in _groups(values, channel_wise)] if nonzero else _groups(values, channel_wise)
        integral = small_integers or all(
            g.size == 0 or (g.min() >= -_OFFSET and g.max() < _OFFSET and np.array_equal(g, np.floor(g)))
            for g in groups
        )
        return groups, integral

    def first(block, location) -> tuple[list[dict], np.dtype]:
        groups, integral = values_of(block, location)
        return [_first_pass(g, integral) for g in groups], groups[0].dtype

    summaries, target = _map_reduce(array, first, lambda a, b: (_merge_first(a[0], b[0], a[1]), a[1]), batch)
    bits = 8 * target.itemsize
    # per group: the 0-based ranks NumPy's interpolation needs, and the weights
    ranks: list[dict[int, tuple[int, int] | float]] = []  # rank -> (resolved key prefix, rank in its bin) or value
    for summary in summaries:
        needed: dict[int, Any] = {}
        for value in q:
            position = value / 100.0 * (summary["count"] - 1)
            below = math.floor(position)
            for rank in (below, min(below + 1, summary["count"] - 1)) if summary["count"] else ():
                if "integral" in summary:
                    index, _ = _select(summary["integral"], rank)
                    needed[rank] = float(index - _OFFSET)
                else:
                    needed[rank] = _select(summary["digits"], rank)
        ranks.append(needed)
    integral = all("integral" in s for s in summaries)
    logger.info(
        "percentiles %s of %s values: %s",
        list(q),
        "non-zero" if nonzero else "all",
        "integer-valued, one pass" if integral else f"exact radix selection, {bits // _DIGIT} passes",
    )
    for resolved in range(_DIGIT, bits, _DIGIT):
        prefixes = [sorted({v[0] for v in needed.values() if isinstance(v, tuple)}) for needed in ranks]
        if not any(prefixes):
            break

        def refine(block, location, resolved=resolved, prefixes=prefixes) -> dict:
            groups, _ = values_of(block, location)
            out = {}
            for g, (values, wanted) in enumerate(zip(groups, prefixes, strict=True)):
                if not wanted:
                    continue
                keys = _keys(values)
                high = keys >> keys.dtype.type(bits - resolved)
                for p in wanted:
                    out[g, p] = np.bincount(_digit(keys[high == p], bits, resolved), minlength=1 << _DIGIT)
            return out

        histograms = _map_reduce(array, refine, lambda a, b: {k: a[k] + b[k] for k in a}, batch)
        for g, needed in enumerate(ranks):
            for rank, state in needed.items():
                if isinstance(state, tuple):
                    digit, inner = _select(histograms[g, state[0]], state[1])
                    needed[rank] = ((state[0] << _DIGIT) | digit, inner)
    values = [
        {rank: float(_from_keys(np.array([s[0]]), target)[0]) if isinstance(s, tuple) else s for rank, s in n.items()}
        for n in ranks
    ]
    counts = [summary["count"] for summary in summaries]
    # the interpolation of common.ops.percentile in the same type and tensor shape: one (C,) tensor for
    # ScalePercentiles' (C, H*W) call, one 0-d tensor per group for NonZeroPercentileNormalize's calls
    together = (
        [list(range(len(counts)))] if not nonzero and len(set(counts)) == 1 else [[g] for g in range(len(counts))]
    )
    results = np.full((len(counts), len(q)), np.nan)
    torch_type = torch.from_numpy(np.empty(0, target)).dtype
    for members in together:
        count = counts[members[0]]
        if not count:
            continue
        for k, value in enumerate(q):
            position = value / 100.0 * (count - 1)
            below = math.floor(position)
            above = min(below + 1, count - 1)
            low = torch.tensor([values[g][below] for g in members], dtype=torch_type)
            high = torch.tensor([values[g][above] for g in members], dtype=torch_type)
            if nonzero:
                low, high = low[0], high[0]
            result = torch.lerp(low, high, position - below) if above != below else low
            results[members, k] = result.double().numpy()
    return results if channel_wise else results[0]


def min_max(
    array, prefix_transform: Prefix = None, *, channel_wise: bool = False, dtype: Any = np.float32, batch: int = 16
) -> np.ndarray:
    """Minimum and maximum of a lazy image after conversion to ``dtype``, as MONAI's ``ScaleIntensity`` takes
    them (``rescale_array``, float32 by default).

    Returns:
        (C, 2) with ``channel_wise``, else (2,): (min, max), float64.
    """

    def block_min_max(block, location) -> np.ndarray:
        groups = _groups(_prepared(block, location, prefix_transform).astype(dtype), channel_wise)
        return np.array([[g.min(), g.max()] for g in groups], dtype=np.float64)

    def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.stack([np.minimum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])], axis=1)

    result = _map_reduce(array, block_min_max, merge, batch)
    return result if channel_wise else result[0]


def mean_std(
    array, prefix_transform: Prefix = None, *, ddof: int = 1, dtype: Any = None, batch: int = 16
) -> np.ndarray:
    """Mean and standard deviation of each channel of a lazy image, accumulated in float64, as
    :func:`common.ops.whiten` computes them (Bessel's correction: ``ddof=1``; a single pixel: std 0).

    Args:
        dtype: type the values are converted to first; None: float32 unless floating (``as_float_image``).

    Returns:
        (C, 2): (mean, std), float64.
    """

    def block_moments(block, location) -> np.ndarray:
        out = _prepared(block, location, prefix_transform)
        values = out.astype(_float_image_dtype(out.dtype) if dtype is None else dtype).astype(np.float64)
        moments = []
        for g in _groups(values, True):
            mean = g.mean()
            moments.append([g.size, mean, np.sum(np.square(g - mean))])
        return np.array(moments)

    def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # Chan et al.'s pairwise update
        count = a[:, 0] + b[:, 0]
        delta = b[:, 1] - a[:, 1]
        mean = a[:, 1] + delta * (b[:, 0] / count)
        m2 = a[:, 2] + b[:, 2] + delta**2 * (a[:, 0] * b[:, 0] / count)
        return np.stack([count, mean, m2], axis=1)

    moments = _map_reduce(array, block_moments, merge, batch)
    count = moments[:, 0]
    std = np.sqrt(moments[:, 2] / np.maximum(count - ddof, 1)) * (count > max(ddof, 1))
    return np.stack([moments[:, 1], std], axis=1)


KINDS = ("percentiles", "nonzero_percentiles", "mean_std", "min_max")


def image_statistics(array, prefix_transform: Prefix = None, kind: str = "percentiles", **kwargs) -> np.ndarray:
    """The statistics a normalising transform computes on the whole image, for its ``statistics`` argument.

    Args:
        array: (C, Y, X) dask array, read block by block.
        prefix_transform: pointwise callable on (C, y, x) blocks (the transforms before the normalising one, e.g.
            :class:`KeyPrefix`), or None.
        kind: ``"percentiles"`` (``lower``, ``upper`` -> (C, 2), for ``ScalePercentiles``),
            ``"nonzero_percentiles"`` (``lower``, ``upper``, ``channel_wise=False`` -> (2,) or (C, 2), for
            ``NonZeroPercentileNormalize``), ``"mean_std"`` (-> (C, 2), for ``Whiten``) or ``"min_max"``
            (``channel_wise=False`` -> (2,): ``a_min``, ``a_max`` of ``ScaleIntensityRange`` in place of
            ``ScaleIntensity``).
        kwargs: further arguments of :func:`percentiles`, :func:`mean_std` or :func:`min_max` (``batch``, ...).
    """
    if kind in ("percentiles", "nonzero_percentiles"):
        if "lower" not in kwargs or "upper" not in kwargs:
            raise ValueError(f"kind {kind!r}: expected the percentiles as lower=..., upper=..., got {sorted(kwargs)}.")
        q = (kwargs.pop("lower"), kwargs.pop("upper"))
        if kind == "nonzero_percentiles":
            kwargs = {"nonzero": True, "channel_wise": False, **kwargs}
        return percentiles(array, q, prefix_transform, **kwargs)
    if kind == "mean_std":
        return mean_std(array, prefix_transform, **kwargs)
    if kind == "min_max":
        return min_max(array, prefix_transform, **kwargs)
    raise ValueError(f"kind: expected one of {list(KINDS)}, got {kind!r}.")
