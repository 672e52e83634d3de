"""MONAI Deploy application running any bundle of the collection on a folder of microscopy images.

    python -m common.deploy --bundle <bundle folder or zip> -i <input folder> -o <output folder> [--set id=value ...]
    python common/deploy/app.py -i <input folder> -o <output folder> -m <bundle folder or zip>  # SDK convention
    HOLOSCAN_INPUT_PATH=... HOLOSCAN_OUTPUT_PATH=... HOLOSCAN_MODEL_PATH=<bundle> python app.py

Graph: MicroscopyImageLoaderOperator -> BundleInferenceOperator -> MicroscopyImageWriterOperator, each input
handed over in memory; loading, inference (with the bundle's post-processing, instance labels included) and
writing are the bundle's own, so the files equal those of its ``inferring`` run. Inputs too large to load whole
(OME-Zarr stores in the input folder, TIFFs of more than ``--large-image-pixels`` pixels, by default
``$MICROSCOPY_LARGE_IMAGE_PIXELS`` or 2**26) go to WholeSlideInferenceOperator instead: the bundle's
``configs/large_image.json`` predicts them block by block into ``<input name>.ome.zarr`` beside the other outputs
(``--set n_workers=4`` or ``--set scheduler_address=tcp://host:8786`` choose its Dask cluster). As in the bundle's
own run, inputs whose outputs are complete are skipped (``--set overwrite=true`` redoes them), an input that fails
is recorded and the others go on, and the application ends with ``failures.csv`` beside the outputs and a non-zero
exit status.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a plain script (app.py of a MAP): find the folder holding `common`
    sys.path.insert(
        0, str(next(p for p in Path(__file__).resolve().parents if (p / "common" / "__init__.py").is_file()))
    )

from monai.deploy.conditions import CountCondition
from monai.deploy.core import AppContext, Application

from common.deploy.operators import (
    BundleInferenceOperator,
    MicroscopyImageLoaderOperator,
    MicroscopyImageWriterOperator,
    WholeSlideInferenceOperator,
)
from common.deploy.pipeline import BundlePipeline, large_image_limit
from common.handlers import FolderRunError

__all__ = ["MicroscopyBundleApp", "main"]


class MicroscopyBundleApp(Application):
    """Loads the inputs, runs the bundle given as the model path, writes its outputs; inputs above
    ``large_image_pixels`` (see :func:`common.deploy.pipeline.large_image_limit`) and OME-Zarr inputs run block
    by block through the bundle's ``configs/large_image.json``."""

    def __init__(self, *args, overrides: dict | None = None, large_image_pixels: int | None = None, **kwargs) -> None:
        self.overrides = overrides or {}
        self.large_image_pixels = large_image_pixels
        super().__init__(*args, **kwargs)

    def compose(self) -> None:
        # holoscan keeps the arguments after the program name (an empty string when there are none)
        context: AppContext = Application.init_app_context(["app", *(arg for arg in self.argv if arg)])
        for name, path in (("input", context.input_path), ("bundle", context.model_path)):
            if not path or not Path(path).exists():
                raise FileNotFoundError(f"{name} path {path!r} does not exist.")
        Path(context.output_path).mkdir(parents=True, exist_ok=True)
        pipeline = BundlePipeline(
            context.model_path, context.input_path, context.output_path, self.overrides, self.large_image_pixels
        )
        logging.info(
            "bundle %s: %d inputs (%d of them whole slides, block by block) from %s to %s",
            pipeline.bundle.name,
            len(pipeline.datalist) + len(pipeline.large),
            len(pipeline.large),
            context.input_path,
            context.output_path,
        )
        self.pipeline = pipeline
        if pipeline.large:
            slides = WholeSlideInferenceOperator(
                self,
                CountCondition(self, len(pipeline.large)),
                items=pipeline.large,
                run=pipeline.predict_large,
                on_saved=pipeline.saved,
                on_error=pipeline.failed,
                name="whole_slides",
            )
            self.add_operator(slides)
        if not pipeline.datalist:
            if not pipeline.large:
                logging.info("nothing to do: every input has its outputs in %s", context.output_path)
            return
        loader = MicroscopyImageLoaderOperator(
            self,
            CountCondition(self, len(pipeline.datalist)),
            datalist=pipeline.datalist,
            load=pipeline.load,
            keys=pipeline.loaded_keys,
            on_error=pipeline.failed,
            name="loader",
        )
        inference = BundleInferenceOperator(self, pipeline=pipeline, name="bundle_inference")
        writer = MicroscopyImageWriterOperator(
            self, save=pipeline.save, on_saved=pipeline.saved, on_error=pipeline.failed, name="writer"
        )
        self.add_flow(loader, inference, {("image", "image")})
        self.add_flow(inference, writer, {("outputs", "outputs")})


def split_overrides(argv: list[str]) -> tuple[list[str], dict]:
    """Take ``--set id=value`` pairs (value parsed as JSON where it is JSON, else a string) out of ``argv``."""
    rest, overrides = [], {}
    arguments = iter(argv)
    for arg in arguments:
        if arg != "--set":
            rest.append(arg)
            continue
        pair = next(arguments, "")
        if "=" not in pair:
            raise SystemExit(f"--set expects id=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return rest, overrides


def take_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """Take ``name value`` (or ``name=value``) out of ``argv``; returns the rest and the value (None if absent)."""
    rest, value = [], None
    arguments = iter(argv)
    for arg in arguments:
        if arg == name:
            value = next(arguments, None)
            if value is None:
                raise SystemExit(f"{name} expects a value")
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, value


def main(argv: list[str] | None = None) -> None:
    """Run the application; ``--bundle X`` is accepted for ``-m X`` (``--model X``), ``--set id=value`` overrides
    an id of the bundle's inference config (e.g. ``--set device=cpu``, ``--set 'patch_size=[512, 512]'``) or of
    its ``large_image.json`` (``--set n_workers=4``), ``--large-image-pixels N`` sends TIFF inputs of more than N
    pixels (Y * X) through the whole-slide path."""
    argv, overrides = split_overrides(list(sys.argv if argv is None else argv))
    argv, pixels = take_option(argv, "--large-image-pixels")
    large_image_pixels = None if pixels is None else large_image_limit(pixels)
    argv = [("--model" if arg == "--bundle" else arg) for arg in argv]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    app = MicroscopyBundleApp(argv, overrides=overrides, large_image_pixels=large_image_pixels)
    app.run()
    pipeline = getattr(app, "pipeline", None)
    if pipeline is not None:
        try:
            pipeline.finish()  # failures.csv beside the outputs; a non-zero exit when any input failed
        except FolderRunError as error:
            raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
