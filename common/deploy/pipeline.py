"""A bundle's inference config cut into the three steps a deployment runs apart: load, predict, save.

The split is read from the bundle itself: the ``Load*`` transforms that open ``preprocessing`` are the load step,
the ``Save*`` transforms of ``postprocessing`` the save step, and the bundle's own ``evaluator`` (its network,
checkpoints, inferer, test-time augmentation, ensembles and instance post-processing) predicts in between, on
data handed over in memory. Outputs therefore equal those of the bundle's ``inferring`` run on the same files.
No MONAI Deploy import here: the operators in ``common.deploy.operators`` wrap this class.
"""

from __future__ import annotations

import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.transforms import Compose

__all__ = ["BundlePipeline", "bundle_folder"]


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


def _split(compose: Compose, prefix: str, leading: bool) -> Compose:
    """Remove from ``compose`` the transforms whose class name starts with ``prefix`` (only the leading run of
    them when ``leading``); return them as their own Compose."""
    transforms = list(compose.transforms)
    removed: list = []
    while transforms and type(transforms[0 if leading else -1]).__name__.startswith(prefix):
        removed.insert(len(removed) if leading else 0, transforms.pop(0 if leading else -1))
    compose.transforms = tuple(transforms)
    return Compose(removed)


class BundlePipeline:
    """A bundle's inference, runnable one input at a time.

    Args:
        bundle: bundle folder or zip.
        input_dir: folder of input files, read with the bundle's own datalist (``dataset_dir``).
        output_dir: where the bundle's save transforms write (``output_dir``).
        overrides: more config overrides, e.g. ``{"device": "cpu"}``.

    ``datalist`` lists the inputs; ``load(item)`` opens one (dict of MetaTensors), ``predict(loaded)`` returns the
    post-processed outputs (list of dicts, one per image), ``save(output)`` writes one.
    """

    def __init__(
        self,
        bundle: str | Path,
        input_dir: str | Path,
        output_dir: str | Path,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.bundle = bundle_folder(bundle)
        if str(self.bundle) not in sys.path:
            sys.path.insert(0, str(self.bundle))  # its configs import its copy of `common`
        parser = ConfigParser()
        parser.read_config(str(self.bundle / "configs" / "inference.json"))
        parser.read_meta(str(self.bundle / "configs" / "metadata.json"))
        parser.update(
            {
                "bundle_root": str(self.bundle),
                "dataset_dir": str(input_dir),
                "output_dir": str(output_dir),
                **(overrides or {}),
            }
        )
        self.parser = parser
        self.datalist = list(parser.get_parsed_content("datalist"))
        self.evaluator = parser.get_parsed_content("evaluator")
        dataset = self.evaluator.data_loader.dataset
        # the very Compose objects the evaluator runs (the parser instantiates each id once)
        self.load = _split(parser.get_parsed_content("preprocessing"), "Load", leading=True)
        self.save = _split(parser.get_parsed_content("postprocessing"), "Save", leading=False)
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
