"""A bundle's inference config cut into the three steps a deployment runs apart: load, predict, save.

The split is read from the bundle itself: the ``Load*`` transforms that open ``preprocessing`` are the load step,
the ``Save*`` transforms of ``postprocessing`` the save step, and the bundle's own ``evaluator`` (its network,
checkpoints, inferer, test-time augmentation, ensembles and instance post-processing) predicts in between, on
data handed over in memory. Outputs therefore equal those of the bundle's ``inferring`` run on the same files.

Large inputs are never loaded whole: OME-Zarr folders in the input folder, and TIFF / OME-TIFF files of more than
``large_image_pixels`` pixels (Y * X; default 2**26 = 8192 x 8192, or the environment variable
``MICROSCOPY_LARGE_IMAGE_PIXELS``), run through the bundle's ``configs/large_image.json`` (``inferring_large``:
block by block on Dask, :class:`common.slides.SlideInference`) into ``<output_dir>/<input name>.ome.zarr``, as
``python -m monai.bundle run inferring_large`` writes it. No MONAI Deploy import here: the operators in
``common.deploy.operators`` wrap this class.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.transforms import Compose

from common.io import ImageFileError, LayoutError, image_suffix
from common.io.images import TIFF_SUFFIXES
from common.io.slides import open_slide
from common.slides.predict import split_compose

__all__ = [
    "BundlePipeline",
    "bundle_folder",
    "large_image_limit",
    "slide_pixels",
    "LARGE_IMAGE_CONFIG",
    "LARGE_IMAGE_ENV",
    "LARGE_IMAGE_PIXELS",
]
logger = logging.getLogger(__name__)

#: the bundle's whole-slide overlay, layered on ``inference.json``
LARGE_IMAGE_CONFIG = "large_image.json"
#: inputs of more pixels (Y * X) than this take the whole-slide path by default (8192 x 8192)
LARGE_IMAGE_PIXELS = 2**26
#: environment variable that sets the limit where no ``large_image_pixels`` is given (a MAP's settings)
LARGE_IMAGE_ENV = "MICROSCOPY_LARGE_IMAGE_PIXELS"
_ZARR_SUFFIXES = (".ome.zarr", ".zarr")


def large_image_limit(pixels: int | str | None = None) -> int:
    """The whole-slide limit in pixels: ``pixels`` if given, else ``$MICROSCOPY_LARGE_IMAGE_PIXELS``, else 2**26."""
    where, value = "large_image_pixels", pixels
    if value is None:
        where, value = LARGE_IMAGE_ENV, os.environ.get(LARGE_IMAGE_ENV) or LARGE_IMAGE_PIXELS
    try:
        limit = int(value)
    except (TypeError, ValueError):
        limit = 0
    if limit < 1:
        raise ValueError(f"{where}: {value!r}, expected a positive number of pixels (Y * X).")
    return limit


def slide_pixels(path: str | Path) -> int:
    """Y * X of a TIFF / OME-TIFF's full resolution, read from its header; 0 for other files and for a TIFF that
    cannot be opened as a slide (the in-memory path reads those, and reports a broken file)."""
    if image_suffix(path) not in TIFF_SUFFIXES:
        return 0
    try:
        shape = open_slide(path).array.shape
    except (ImageFileError, ValueError, OSError):
        return 0
    return int(shape[-2]) * int(shape[-1])


def _slide_stem(path: Path) -> str:
    """``path``'s name without its image or Zarr suffix (``a.ome.tiff``, ``a.ome.zarr`` -> ``a``)."""
    name = path.name
    suffix = next((s for s in _ZARR_SUFFIXES if name.lower().endswith(s)), "") or image_suffix(path)
    return name[: len(name) - len(suffix)] if suffix else path.stem


def _ome_zarr_inputs(folder: str | Path) -> list[Path]:
    """The OME-Zarr stores (folders named ``*.zarr``) directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and p.name.lower().endswith(_ZARR_SUFFIXES)]


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``error`` or one of its causes (the config parser wraps errors) is a ``kind``."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__
    return False


def bundle_folder(path: str | Path, workdir: str | Path | None = None) -> Path:
    """The bundle folder of ``path``: a folder with ``configs/``, or a bundle zip extracted under ``workdir``."""
    path = Path(path)
    if (path / "configs" / "inference.json").is_file():
        return path.resolve()
    if path.is_file() and zipfile.is_zipfile(path):
        target = Path(workdir or tempfile.mkdtemp(prefix="bundle_"))
        with zipfile.ZipFile(path) as archive:
            tops = {name.split("/")[0] for name in archive.namelist()}
            if len(tops) != 1:
                raise ValueError(f"{path}: a bundle zip holds one top folder, found {sorted(tops)}.")
            archive.extractall(target)
        return bundle_folder(target / tops.pop())
    raise FileNotFoundError(f"{path}: not a bundle (no configs/inference.json) nor a bundle zip.")


def _split_off(compose: Compose, prefix: str, leading: bool) -> Compose:
    """Remove from ``compose`` itself (the object the evaluator runs) the leading or trailing run of transforms
    whose class name starts with ``prefix``; return them as their own Compose."""
    rest, removed = split_compose(compose, prefix, leading)
    compose.transforms = rest.transforms
    return removed


class BundlePipeline:
    """A bundle's inference, runnable one input at a time.

    Args:
        bundle: bundle folder or zip.
        input_dir: folder of input files, read with the bundle's own datalist (``dataset_dir``), and the OME-Zarr
            stores in it.
        output_dir: where the bundle's save transforms write (``output_dir``).
        overrides: more config overrides, e.g. ``{"device": "cpu"}`` (also ids of ``large_image.json``, e.g.
            ``n_workers``, ``block_size``).
        large_image_pixels: TIFF inputs of more pixels (Y * X) than this take the whole-slide path (see
            :func:`large_image_limit`).

    ``datalist`` lists the inputs loaded whole; ``load(item)`` opens one (dict of MetaTensors), ``predict(loaded)``
    returns the post-processed outputs (list of dicts, one per image), ``save(output)`` writes one. ``large`` lists
    the inputs of the whole-slide path; ``predict_large(item)`` runs one and returns what it wrote.
    """

    def __init__(
        self,
        bundle: str | Path,
        input_dir: str | Path,
        output_dir: str | Path,
        overrides: Mapping[str, Any] | None = None,
        large_image_pixels: int | None = None,
    ) -> None:
        self.bundle = bundle_folder(bundle)
        if str(self.bundle) not in sys.path:
            sys.path.insert(0, str(self.bundle))  # its configs import its copy of `common`
        self.output_dir = Path(output_dir)
        self.large_image_pixels = large_image_limit(large_image_pixels)
        self.settings = {
            "bundle_root": str(self.bundle),
            "dataset_dir": str(input_dir),
            "output_dir": str(output_dir),
            **(overrides or {}),
        }
        parser = self._parser("inference.json")
        self.parser = parser
        stores = _ome_zarr_inputs(input_dir)
        try:
            items = list(parser.get_parsed_content("datalist"))
        except Exception as error:
            if not (stores and _caused_by(error, LayoutError)):
                raise
            logger.info("%s: no input for the bundle's datalist besides %d OME-Zarr store(s)", input_dir, len(stores))
            parser["datalist"], items = [], []
        self.evaluator = parser.get_parsed_content("evaluator")
        dataset = self.evaluator.data_loader.dataset
        # the very Compose objects the evaluator runs (the parser instantiates each id once)
        self.load = _split_off(parser.get_parsed_content("preprocessing"), "Load", leading=True)
        self.save = _split_off(parser.get_parsed_content("postprocessing"), "Save", leading=False)
        if not self.load.transforms:
            raise ValueError(f"{self.bundle}: preprocessing does not start with a Load transform to split off.")
        self._dataset = dataset
        self._outputs: list = []
        self.evaluator.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        # the bundle's record of done and failed inputs; here an input is done once the save step wrote it
        self.folder_run = parser.get_parsed_content("folder_run") if "folder_run" in parser else None
        if self.folder_run is not None:
            self.evaluator.remove_event_handler(self.folder_run.record, Events.ITERATION_COMPLETED)
            self.evaluator.remove_event_handler(self.folder_run.finish, Events.COMPLETED)
        key = self.loaded_keys[0]
        slides = [{key: str(store)} for store in stores]
        if slides and self.folder_run is not None:
            slides = self.folder_run.pending(slides)  # those done before are skipped, as the bundle's own inputs
        large = [item for item in items if slide_pixels(_single_path(item.get(key))) > self.large_image_pixels]
        self.datalist = [item for item in items if item not in large]
        self.large = large + slides

    def _parser(self, *names: str, **settings: Any) -> ConfigParser:
        """The bundle's configs ``names`` with this pipeline's settings and ``settings``."""
        parser = ConfigParser()
        parser.read_config([str(self.bundle / "configs" / name) for name in names])
        parser.read_meta(str(self.bundle / "configs" / "metadata.json"))
        parser.update({**self.settings, **settings})
        return parser

    def predict_large(self, item: Mapping[str, Any]) -> dict:
        """Run the bundle's ``inferring_large`` (``configs/large_image.json``) on the slide of ``item`` into
        ``<output_dir>/<input name>.ome.zarr`` (and, for instance bundles, ``<input name>_cells.csv``); returns
        the record of what was written (``{image key: input, "slide_path": store, "cells_path": table}``)."""
        key = self.loaded_keys[0]
        source = Path(item[key])
        config = self.bundle / "configs" / LARGE_IMAGE_CONFIG
        if not config.is_file():
            raise FileNotFoundError(
                f"{source}: an OME-Zarr store or an image of more than {self.large_image_pixels} pixels runs block "
                f"by block through the bundle's {config}, which this bundle does not have (raise the limit with "
                f"--large-image-pixels or ${LARGE_IMAGE_ENV} to load such a TIFF whole)."
            )
        stem = _slide_stem(source)
        output = self.output_dir / f"{stem}.ome.zarr"
        if output.resolve() == source.resolve():
            raise ValueError(f"{source}: the output would replace this input; write the outputs to another folder.")
        parser = self._parser("inference.json", LARGE_IMAGE_CONFIG, input=str(source), output=str(output))
        try:
            parser.get_parsed_content("inferring_large")
        except RuntimeError as error:  # the config parser wraps the error of the expression: raise that one
            if error.__cause__ is None:
                raise
            raise error.__cause__ from error
        written = {key: str(source), "slide_path": str(output)}
        cells = output.parent / f"{stem}_cells.csv"
        if cells.is_file():
            written["cells_path"] = str(cells)
        return written

    def failed(self, source: str, error: BaseException | str) -> None:
        """Record that ``source`` failed (in loading or saving); without a folder record, raise."""
        if self.folder_run is None:
            raise error if isinstance(error, BaseException) else RuntimeError(f"{source}: {error}")
        self.folder_run.fail(source, error if isinstance(error, str) else f"{type(error).__name__}: {error}")

    def saved(self, output: Mapping[str, Any]) -> None:
        """Record the input of ``output`` as done, its files written."""
        if self.folder_run is not None:
            self.folder_run.record_item(output)

    def finish(self) -> None:
        """After the last input: write the failures report and raise if any input failed."""
        if self.folder_run is not None:
            self.folder_run.finish()

    @property
    def loaded_keys(self) -> list[str]:
        """Keys the load step fills: the images handed from the loader to the inference operator."""
        return [key for t in self.load.transforms for key in getattr(t, "keys", ())]

    def _collect(self, engine) -> None:
        output = engine.state.output
        self._outputs.extend(output if isinstance(output, list) else [output])

    def predict(self, loaded: Mapping[str, Any]) -> list[dict]:
        """Post-processed outputs of the bundle's evaluator for one loaded input."""
        self._dataset.data, self._outputs = [dict(loaded)], []
        self.evaluator.state.epoch_length = 1  # the engine counted the datalist when it was built
        self.evaluator.run()
        return self._outputs


def _single_path(value: Any) -> str:
    """``value`` if it is one file path, else "" (items of several files are loaded whole)."""
    return str(value) if isinstance(value, (str, os.PathLike)) else ""
