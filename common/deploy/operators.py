"""MONAI Deploy operators for microscopy: load TIFF / OME-TIFF / PNG, run a bundle, write without casting.

The SDK's stock I/O is DICOM and NIfTI, and its image output path casts predictions to uint8, which wraps instance
ids above 255 and truncates float fluorescence. These operators hand data over in memory as SDK ``Image`` objects
whose metadata carries what ``MonaiBundleInferenceOperator`` reads (``spacing``, ``original_affine``,
``original_channel_dim``) plus the source file and its pixel size, and write with the bundle's own writer.
Inputs too large to load run through :class:`WholeSlideInferenceOperator` instead, which reads and writes them
block by block.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np
from monai.data import MetaTensor
from monai.deploy.core import ConditionType, Fragment, Image, Operator, OperatorSpec
from monai.transforms import Compose, LoadImaged

from common.data.fail_soft import FAILED
from common.deploy.pipeline import BundlePipeline
from common.io import MicroscopyReader, SaveImageFiled, image_folder_datalist
from common.transforms.meta import source_file

__all__ = [
    "MicroscopyImageLoaderOperator",
    "BundleInferenceOperator",
    "MicroscopyImageWriterOperator",
    "WholeSlideInferenceOperator",
    "to_sdk_image",
    "from_sdk_image",
]
logger = logging.getLogger(__name__)


def to_sdk_image(image: MetaTensor) -> Image:
    """A loaded (C, H, W) MetaTensor as an SDK ``Image``: array unchanged, metadata as plain Python / NumPy values."""
    meta = {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in dict(image.meta).items()}
    meta.setdefault("spacing", np.asarray(meta.get("pixdim", [1.0, 1.0, 1.0])[1:3], dtype=float))
    meta.setdefault("original_affine", meta.get("affine"))
    meta["original_channel_dim"] = 0
    return Image(image.as_tensor().numpy(), metadata=meta)


def from_sdk_image(image: Image) -> MetaTensor:
    return MetaTensor(np.asarray(image.asnumpy()), meta=dict(image.metadata()))


class MicroscopyImageLoaderOperator(Operator):
    """Emits one input per call, as an SDK ``Image`` on port ``image`` (a dict of them when the load step fills
    several keys), and stops after the last one.

    Args:
        fragment: the application.
        datalist: items to load, e.g. ``[{"image": path}, ...]``; by default every image file of ``input_dir``.
        input_dir: folder read when ``datalist`` is not given.
        load: transform opening an item; by default TIFF / OME-TIFF / PNG through ``common.io.MicroscopyReader``
            as (C, H, W) with the pixel size in the metadata.
        keys: the keys ``load`` fills.
        on_error: ``on_error(input file, error)`` records an input that cannot be loaded (a failure marker is then
            emitted in its place); without it the error stops the application.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        datalist: Sequence[Mapping] | None = None,
        input_dir: str = "",
        load: Callable | None = None,
        keys: Sequence[str] = ("image",),
        on_error: Callable[[str, BaseException], None] | None = None,
        **kwargs,
    ) -> None:
        self.datalist = list(datalist) if datalist is not None else image_folder_datalist(input_dir)
        if not self.datalist:
            raise FileNotFoundError(f"{input_dir or 'datalist'}: no input image to process.")
        self.keys = list(keys)
        if not load:  # MONAI's LoadImaged annotates reader as a class or name; it documents and takes instances too
            load = Compose([LoadImaged(self.keys, reader=MicroscopyReader(), ensure_channel_first=True)])  # type: ignore[arg-type]
        self.load = load
        self.index, self.on_error = 0, on_error
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.output("image")

    def compute(self, op_input, op_output, context) -> None:
        item = self.datalist[self.index]
        self.index += 1
        try:
            loaded = self.load(dict(item))
        except Exception as error:  # one unreadable input: recorded by the pipeline, the others go on
            source = source_file(item) or str(item)
            if self.on_error is None:
                raise
            self.on_error(source, error)
            op_output.emit({FAILED: source}, "image")
            return
        images = {key: to_sdk_image(loaded[key]) for key in self.keys}
        others = {key: value for key, value in loaded.items() if key not in images and not key.endswith("_meta_dict")}
        logger.info("loaded input %d/%d: %s", self.index, len(self.datalist), item)
        op_output.emit(images[self.keys[0]] if len(images) == 1 and not others else {**others, **images}, "image")


class BundleInferenceOperator(Operator):
    """Runs a bundle's inference (network, checkpoints, inferer, post-processing) on each received input and emits
    the outputs, a list of dicts of MetaTensors, on port ``outputs``."""

    def __init__(self, fragment: Fragment, *args, pipeline: BundlePipeline, **kwargs) -> None:
        self.pipeline = pipeline
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("image")
        spec.output("outputs")

    def compute(self, op_input, op_output, context) -> None:
        received: Any = op_input.receive("image")
        if isinstance(received, Mapping) and FAILED in received:  # the loader could not read this input
            op_output.emit([], "outputs")
            return
        if isinstance(received, Image):
            received = {self.pipeline.loaded_keys[0]: received}
        loaded = {k: from_sdk_image(v) if isinstance(v, Image) else v for k, v in received.items()}
        op_output.emit(self.pipeline.predict(loaded), "outputs")


class MicroscopyImageWriterOperator(Operator):
    """Writes each received output with ``save`` (by default ``common.io.SaveImageFiled`` keeping the dtype:
    instance ids stay uint16 / uint32, fluorescence float32; OME-TIFF with the input's pixel size).

    Args:
        fragment: the application.
        save: transform writing one output dict; ``output_dir``, ``keys`` and ``postfix`` build the default one.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        save: Callable | None = None,
        output_dir: str = "",
        keys: Sequence[str] = ("pred",),
        postfix: str = "",
        on_saved: Callable[[Mapping], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        **kwargs,
    ) -> None:
        self.save = save or SaveImageFiled(list(keys), output_dir=output_dir, postfix=postfix, kind="keep")
        self.on_saved, self.on_error = on_saved, on_error
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("outputs").condition(ConditionType.MESSAGE_AVAILABLE)

    def compute(self, op_input, op_output, context) -> None:
        outputs = op_input.receive("outputs")
        for output in outputs if isinstance(outputs, list) else [outputs]:
            try:
                written = self.save(output)
            except Exception as error:  # recorded as this input's failure when a handler is given
                if self.on_error is None:
                    raise
                self.on_error(source_file(output, ("image", "pred")) or "(unknown input)", error)
                continue
            if self.on_saved is not None:
                self.on_saved(written)


class WholeSlideInferenceOperator(Operator):
    """Runs one large input per call through ``run`` (``BundlePipeline.predict_large``: the bundle's
    ``configs/large_image.json``, block by block on Dask into an OME-Zarr store) and stops after the last one. It
    has no ports: the slide is read and its outputs written chunk by chunk, never handed over whole.

    Args:
        fragment: the application.
        items: the large inputs, e.g. ``[{"image": "slide.ome.zarr"}, ...]``.
        run: ``run(item)`` predicts and writes one, returning the record of what it wrote.
        on_saved: ``on_saved(record)`` after an input is written.
        on_error: ``on_error(input file, error)`` records an input that failed; without it the error stops the
            application.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        items: Sequence[Mapping],
        run: Callable[[Mapping], Mapping],
        on_saved: Callable[[Mapping], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
        **kwargs,
    ) -> None:
        self.items, self.run, self.index = list(items), run, 0
        self.on_saved, self.on_error = on_saved, on_error
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        pass

    def compute(self, op_input, op_output, context) -> None:
        item = self.items[self.index]
        self.index += 1
        logger.info("whole-slide input %d/%d: %s", self.index, len(self.items), item)
        try:
            written = self.run(item)
        except Exception as error:  # recorded as this input's failure when a handler is given
            if self.on_error is None:
                raise
            self.on_error(source_file(item) or str(item), error)
            return
        if self.on_saved is not None:
            self.on_saved(written)
