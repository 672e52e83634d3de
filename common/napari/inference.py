"""A bundle's inference on an in-memory image, as napari layers; no napari or Qt import here.

:class:`BundleRunner` drives the MONAI Deploy split of the bundle (``common.deploy.pipeline.BundlePipeline``): the
bundle's own ``Load*`` transforms open the array instead of a file (:class:`ArrayReader` stands in for the file
reader, with the same meta data), then the bundle's evaluator predicts and post-processes. The outputs therefore
equal those of the bundle's ``inferring`` run on a file holding the same pixels.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys

from common.deploy.pipeline import BundlePipeline
from common.io.challenge_layouts import adipocyte_channel_names

__all__ = ["ArrayReader", "BundleRunner", "LayerData", "layer_pixels", "output_layers"]

#: napari's layer data tuple: ``(data, layer keyword arguments, layer type)``; data is an array, or a list of
#: arrays (numpy or dask), one per resolution level, for a multiscale layer
LayerData = tuple[Any, dict, str]


class ArrayReader(ImageReader):
    """MONAI reader of an in-memory ``(H, W)`` or ``(H, W, C)`` array under a name, with the meta data that
    ``common.io.MicroscopyReader`` gives a file (``pixel_size_um`` ``(y_um, x_um)``, NaN when unknown)."""

    def __init__(self, name: str, pixels: np.ndarray, pixel_size: Sequence[float] | None = None) -> None:
        super().__init__()
        pixels = np.asarray(pixels)
        if pixels.ndim not in (2, 3):
            raise ValueError(f"{name}: expected an (H, W) or (H, W, C) image, got shape {pixels.shape}.")
        self.name, self.pixels = name, pixels
        self.pixel_size = np.asarray(pixel_size if pixel_size is not None else (np.nan, np.nan), dtype=float)

    def verify_suffix(self, filename: Any) -> bool:
        return filename == self.name

    def read(self, data: Any, **kwargs) -> str:
        names = [data] if isinstance(data, str) else list(data)
        if names != [self.name]:
            raise ValueError(f"ArrayReader holds {self.name!r}, asked for {names}.")
        return self.name

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        meta = {
            MetaKeys.SPATIAL_SHAPE: np.asarray(self.pixels.shape[:2]),
            MetaKeys.ORIGINAL_CHANNEL_DIM: "no_channel" if self.pixels.ndim == 2 else -1,
            MetaKeys.AFFINE: np.eye(3),
            MetaKeys.ORIGINAL_AFFINE: np.eye(3),
            "pixel_size_um": self.pixel_size.copy(),
            "filename_or_obj": self.name,
        }
        return self.pixels, meta


class BundleRunner:
    """A bundle's inference, one in-memory image at a time.

    Args:
        bundle: bundle folder or exported zip (``common.bundle.export``).
        overrides: inference config overrides, e.g. ``{"device": "cpu"}``.
        workdir: folder for the extracted zip and the (unused) output folder; a temporary one by default.

    The bundle's datalist is not read (no input folder) and its data loader runs in this process.
    """

    def __init__(
        self, bundle: str | Path, overrides: Mapping[str, Any] | None = None, workdir: str | Path | None = None
    ) -> None:
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="napari_bundle_"))
        overrides = {"datalist": [], "dataloader#num_workers": 0, **(overrides or {})}
        self.pipeline = BundlePipeline(bundle, self.workdir / "input", self.workdir / "output", overrides)
        keys = self.pipeline.loaded_keys
        if len(keys) != 1:
            raise ValueError(f"{self.pipeline.bundle}: its load step fills {keys}; one image key is supported.")
        self.key = keys[0]
        save_keys = [key for t in self.pipeline.save.transforms for key in getattr(t, "keys", ())]
        self.output_key = save_keys[0] if save_keys else "pred"
        #: the bundle's writer of ``output_key``, whose ``as_written`` gives the values its files hold
        self.writer = next((t for t in self.pipeline.save.transforms if hasattr(t, "as_written")), None)
        folder_run = self.pipeline.folder_run
        if folder_run is not None:  # its log records failed inputs, whose errors predict() raises
            folder_run.output_dir.mkdir(parents=True, exist_ok=True)

    @property
    def name(self) -> str:
        return self.pipeline.bundle.name

    def item_fields(self, fields: Mapping[str, Any] | None = None) -> dict:
        """Entries the bundle's datalist would add to an item: ``fields`` and, for a bundle whose network predicts
        channels per magnification (adipocyte), the ``channels`` of the given ``magnification``."""
        fields = dict(fields or {})
        by_magnification = getattr(self.pipeline.evaluator.network, "channels", None)
        if "magnification" in fields and "channels" not in fields and isinstance(by_magnification, Mapping):
            fields["channels"] = sorted(by_magnification.get(int(fields["magnification"]), []))
        return fields

    def load(
        self, pixels: np.ndarray, name: str, pixel_size: Sequence[float] | None = None, fields: Mapping | None = None
    ) -> dict:
        """``pixels`` (H, W) or (H, W, C) through the bundle's load step, as if read from a file ``name``; the item's
        ``id`` (which names outputs, e.g. the adipocyte bundle's) is ``name`` unless ``fields`` give one."""
        reader = ArrayReader(name, pixels, pixel_size)
        data: dict = {"id": name, **self.item_fields(fields), self.key: name}
        for transform in self.pipeline.load.transforms:
            data = transform(data, reader=reader)
        return data

    def predict(
        self, pixels: np.ndarray, name: str, pixel_size: Sequence[float] | None = None, fields: Mapping | None = None
    ) -> dict:
        """The post-processed output dict of the bundle for one image (its prediction under ``output_key``).

        Raises:
            RuntimeError: the bundle's pipeline failed on the image (its error, which the bundle's folder run
                records instead of raising, in the message).
        """
        folder_run = self.pipeline.folder_run
        failed = len(folder_run.failures) if folder_run is not None else 0
        outputs = self.pipeline.predict(self.load(pixels, name, pixel_size, fields))
        if folder_run is not None and len(folder_run.failures) > failed:
            raise RuntimeError(f"{self.name} on {name}: {folder_run.failures[-1][1]}")
        if len(outputs) != 1:
            raise RuntimeError(f"{self.name}: expected one output for {name}, got {len(outputs)}.")
        return outputs[0]

    def channel_names(self, output: Mapping[str, Any], count: int) -> list[str]:
        """Names of the ``count`` output channels: the bundle's ``organelles`` (LMC), the adipocyte targets of the
        item's ``channels`` (in the output or its prediction's meta data), else ``channel k``."""
        parser = self.pipeline.parser
        names: list[str] = []
        channels = output.get("channels", getattr(output.get(self.output_key), "meta", {}).get("channels"))
        if "organelles" in parser:
            names = [str(name) for name in parser.get_parsed_content("organelles")]
        elif channels is not None:
            numbers = np.asarray(channels).reshape(-1).tolist()
            names = adipocyte_channel_names(numbers)
        return names if len(names) == count else [f"channel {k}" for k in range(count)]


def layer_pixels(data: Any, rgb: bool = False) -> np.ndarray:
    """A napari image layer's data as the ``(H, W)`` or ``(H, W, C)`` array a reader gives: (H, W) as is, RGB(A)
    (H, W, C) as is, other (C, H, W) stacks (channels or z planes) with the channels moved last."""
    pixels = np.asarray(data)
    if pixels.ndim == 2 or (rgb and pixels.ndim == 3):
        return pixels
    if pixels.ndim == 3:
        return np.moveaxis(pixels, 0, -1)
    raise ValueError(f"expected a 2D image, an RGB image or a (C, H, W) stack, got shape {pixels.shape}.")


def output_layers(
    runner: BundleRunner, output: Mapping[str, Any], image_name: str, scale: Sequence[float] = (1.0, 1.0)
) -> list[LayerData]:
    """napari layers of a bundle output: integer predictions (instance or semantic masks) as one labels layer,
    float predictions (fluorescence) as one image layer per channel named after it; ``scale`` (y, x) is kept.
    Values and dtype are those the bundle's writer puts in its files (e.g. the adipocyte bundle's uint16)."""
    prediction = output[runner.output_key]
    pixels = np.asarray(prediction.detach().cpu().numpy() if hasattr(prediction, "detach") else prediction)
    pixels = pixels[None] if pixels.ndim == 2 else pixels  # (C, H, W)
    labels = pixels.dtype == bool or np.issubdtype(pixels.dtype, np.integer)
    if runner.writer is not None:
        pixels = runner.writer.as_written(pixels)
    scale = [float(s) for s in scale]
    if labels:
        pixels = pixels.astype(np.uint8) if pixels.dtype == bool else pixels
        suffixes = [f" {k}" for k in range(len(pixels))] if len(pixels) > 1 else [""]
        return [
            (channel, {"name": f"{image_name} {runner.name}{suffix}", "scale": scale}, "labels")
            for suffix, channel in zip(suffixes, pixels)
        ]
    names = runner.channel_names(output, len(pixels))
    return [
        (channel, {"name": f"{image_name} {name}", "scale": scale, "blending": "additive"}, "image")
        for name, channel in zip(names, pixels)
    ]
