"""Checks that stop a sample with an error naming its files: paired images of different sizes, and a Compose
whose every error names the sample's source file."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import Compose, MapTransform
from monai.utils import TransformBackends, convert_to_tensor

from ..io.errors import DataError
from .meta import SOURCE_KEY, source_file

__all__ = ["CheckSpatialShapesd", "SourceCompose", "as_channel_image"]


def as_channel_image(data, name: str, channels: int) -> torch.Tensor:
    """(channels, H, W) plain tensor of ``data`` (NumPy, tensor or MetaTensor), on its device.

    (H, W) input is accepted when ``channels`` is 1. Raises a ValueError naming ``name`` for another shape.
    """
    data = convert_to_tensor(data, track_meta=False)
    if data.ndim == 2 and channels == 1:
        data = data[None]
    if data.ndim != 3 or data.shape[0] != channels:
        expected = "(1, H, W) or (H, W)" if channels == 1 else f"({channels}, H, W)"
        raise ValueError(f"{name}: expected a {expected} image, got shape {tuple(data.shape)}.")
    return data


class CheckSpatialShapesd(MapTransform):
    """Raise :class:`common.io.DataError` unless the images under ``keys`` share their spatial shape.

    Place it right after loading a sample's image and label (or target) files: a mismatched pair is refused
    there, naming both files and both shapes, instead of training on it or failing later in a metric.

    Args:
        keys: keys of channel-first (C, H, W) images; the first is the reference.
        spatial_dims: number of trailing spatial dimensions compared.
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, keys: KeysCollection, spatial_dims: int = 2, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.spatial_dims = spatial_dims

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        shapes = {key: tuple(d[key].shape[-self.spatial_dims :]) for key in self.key_iterator(d)}
        if len(set(shapes.values())) > 1:
            described = "; ".join(
                f"{key} {shape} from {source_file(d, [key]) or '(no file name)'}" for key, shape in shapes.items()
            )
            raise DataError(f"images of one sample differ in size: {described}.")
        return d


class SourceCompose(Compose):
    """MONAI ``Compose`` whose errors name the file the sample came from.

    MONAI reports a failing transform by its class; in a pipeline over thousands of files, the user needs the
    file. Any error raised while applying the transforms is re-raised as :class:`common.io.DataError`
    ``"<file>: <original error>"`` (MONAI's report chained), the file being read from ``source_keys`` (a path,
    or MetaTensor meta data ``filename_or_obj``) of the sample as it entered. An error whose message already
    names the file is re-raised as it is, without MONAI's wrapper.

    The file also travels with the sample as ``data["source_file"]`` (a string, collated into a list), so that
    what comes after the pipeline can still name it where the images have dropped their meta data
    (``EnsureTyped(track_meta=False)``), e.g. :class:`common.handlers.StopOnNonFiniteLoss`.

    Args:
        transforms: as for ``Compose``.
        source_keys: keys naming the sample's file, in order of preference.
        other arguments: as for ``Compose``.
    """

    def __init__(self, transforms=None, source_keys: Sequence[str] = ("image", "pred"), **kwargs) -> None:
        super().__init__(transforms, **kwargs)
        self.source_keys = tuple(source_keys)

    def __call__(self, input_, *args, **kwargs):
        try:
            output = super().__call__(input_, *args, **kwargs)
        except Exception as error:
            source = source_file(input_, self.source_keys)
            cause = error
            while isinstance(cause, RuntimeError) and cause.__cause__ is not None:  # MONAI's "applying transform"
                cause = cause.__cause__
            if source is None:
                raise
            if source in str(cause):
                raise cause from None
            raise DataError(f"{source}: {type(cause).__name__}: {cause}") from error
        source = source_file(input_, self.source_keys)
        for sample in output if isinstance(output, list) else [output]:
            if source is not None and isinstance(sample, dict):
                sample.setdefault(SOURCE_KEY, source)
        return output
