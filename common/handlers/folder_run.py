"""Folder inference that finishes what it can and resumes: skip what is done, go on past bad files, report them.

:class:`FolderRun` keeps, beside the outputs, ``inference_log.csv``: one line per input once all its outputs are
written (``done``, with their paths) or once it failed (``failed``, with the error). A run:

1. skips the inputs the log marks done whose outputs all exist, and says how many (``overwrite`` redoes all);
2. turns an error while reading, predicting or writing one input into a ``failed`` line and goes on;
3. at the end writes ``failures.csv`` (input, error) when any input failed and raises :class:`FolderRunError`, so
   the command exits non-zero after doing everything it could.

Outputs are written beside and renamed (see :mod:`common.io.atomic`), so a kill leaves complete files and
hidden ``.partial`` leftovers, which the next run deletes; the same command then ends with exactly the outputs of
an uninterrupted run. In a bundle's ``inference.json``::

    "folder_run": {"_target_": "common.handlers.FolderRun", "output_dir": "@output_dir", "overwrite": "@overwrite"},
    "datalist": "$@folder_run.pending(common.io.image_folder_datalist(@dataset_dir))",
    "dataset": {"_target_": "common.data.FailSoftDataset", "data": "@datalist", "transform": "@preprocessing"},
    "evaluator": {..., "iteration_update": "$@folder_run.iteration", "val_handlers": [..., "@folder_run"]}
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from monai.engines import SupervisedEvaluator

from ..data.fail_soft import FAILED, FAILED_ERROR
from ..io.atomic import atomic_path, remove_partials
from ..transforms.meta import source_file

__all__ = ["FolderRun", "FolderRunError"]

logger = logging.getLogger(__name__)

LOG_FIELDS = ("input", "status", "outputs", "error")


class FolderRunError(RuntimeError):
    """Some inputs of a folder run failed; the others were processed."""


def _first(value: Any) -> str:
    """A failed item's entry, or the first of a collated batch's."""
    return str(value[0] if isinstance(value, (list, tuple)) else value)


class FolderRun:
    """The record of a folder inference: inputs done, inputs failed (see the module docstring).

    Args:
        output_dir: the outputs' folder; ``inference_log.csv`` and ``failures.csv`` go there.
        overwrite: process every input again, replacing its outputs (a new log is started).
        image_key: datalist / batch key of the input file.
        path_suffixes: output keys ending with one of them hold the paths the writers wrote (``SaveImageFiled``
            records ``<key>_path``, ``SaveChannelsd`` ``<key>_paths``).
    """

    def __init__(
        self,
        output_dir: str,
        overwrite: bool = False,
        image_key: str = "image",
        path_suffixes: Sequence[str] = ("_path", "_paths"),
    ) -> None:
        self.output_dir, self.overwrite = Path(output_dir), overwrite
        self.image_key, self.path_suffixes = image_key, tuple(path_suffixes)
        self.log_path = self.output_dir / "inference_log.csv"
        self.failures_path = self.output_dir / "failures.csv"
        self.failures: list[tuple[str, str]] = []
        self.done = 0

    def _input_file(self, item: Any) -> str:
        """Input file of a datalist item, a collated batch (its first) or a decollated output."""
        return source_file(item, [self.image_key]) or "(unknown input)"

    # --- before the run ---------------------------------------------------------------------------------------
    def completed(self) -> set[str]:
        """Inputs the log marks done whose recorded outputs all exist (files, or OME-Zarr stores: folders renamed
        into place once complete)."""
        if not self.log_path.is_file():
            return set()
        finished = {}
        with open(self.log_path, newline="") as stream:
            for row in csv.DictReader(stream):
                if None in row.values() or row.get("status") not in ("done", "failed"):
                    continue  # a line cut short by a kill
                finished[row["input"]] = row
        return {
            source
            for source, row in finished.items()
            if row["status"] == "done"
            and all((self.output_dir / name).exists() for name in row["outputs"].split(";") if name)
        }

    def pending(self, datalist: Sequence[Mapping]) -> list[dict]:
        """The items of ``datalist`` still to do; starts the log (a new one with ``overwrite``)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        remove_partials(self.output_dir)
        self.failures_path.unlink(missing_ok=True)  # this run writes its own, if any input fails again
        if self.overwrite:
            self.log_path.unlink(missing_ok=True)
        done = self.completed()
        todo = [dict(item) for item in datalist if self._input_file(item) not in done]
        skipped = len(datalist) - len(todo)
        if skipped:
            logger.info(
                "%s: %d of %d inputs already done, skipped (--overwrite True redoes them); %d to do.",
                self.output_dir,
                skipped,
                len(datalist),
                len(todo),
            )
        if not self.log_path.is_file():
            with atomic_path(self.log_path) as partial:
                partial.write_text(",".join(LOG_FIELDS) + "\n")
        self.failures, self.done = [], 0
        return todo

    # --- during the run ---------------------------------------------------------------------------------------
    def iteration(self, engine: SupervisedEvaluator, batch: Any) -> Any:
        """The evaluator's ``iteration_update``: its own iteration, with a failure recorded instead of raised."""
        if isinstance(batch, Mapping) and FAILED in batch:
            self.fail(_first(batch[FAILED]), _first(batch.get(FAILED_ERROR, "unknown error")))
            return []
        try:
            return engine._iteration(engine, batch)
        except Exception as error:  # prediction or post-processing (writers included) failed for this input
            self.fail(self._input_file(batch), f"{type(error).__name__}: {error}")
            return []

    def fail(self, source: str, error: str) -> None:
        """Record that ``source`` failed with ``error``; the run goes on."""
        logger.error("%s: failed (%s); going on with the next input.", source, error)
        self.failures.append((source, error))
        self._append(source, "failed", "", error)

    def _append(self, source: str, status: str, outputs: str, error: str) -> None:
        with open(self.log_path, "a", newline="") as stream:
            csv.writer(stream).writerow([source, status, outputs, error])
            stream.flush()
            os.fsync(stream.fileno())

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.record)
        engine.add_event_handler(Events.COMPLETED, self.finish)

    def record(self, engine: Engine) -> None:
        """Log every input of the iteration whose outputs are now written."""
        output = engine.state.output
        for item in output if isinstance(output, list) else [output]:
            if isinstance(item, Mapping) and item:
                self.record_item(item)

    def record_item(self, item: Mapping) -> None:
        """Log the input of one post-processed output, with the paths its writers recorded, as done."""
        paths = [
            os.path.relpath(os.path.abspath(path), os.path.abspath(self.output_dir))
            for key, value in item.items()
            if isinstance(key, str) and key.endswith(self.path_suffixes)
            for path in (value if isinstance(value, (list, tuple)) else [value])
            if path
        ]
        self._append(self._input_file(item), "done", ";".join(paths), "")
        self.done += 1

    def finish(self, engine: Engine | None = None) -> None:
        """Write ``failures.csv`` and raise :class:`FolderRunError` if any input failed."""
        if not self.failures:
            self.failures_path.unlink(missing_ok=True)
            return
        with atomic_path(self.failures_path) as partial:
            with open(partial, "w", newline="") as stream:
                writer = csv.writer(stream)
                writer.writerow(["input", "error"])
                writer.writerows(self.failures)
        raise FolderRunError(
            f"{len(self.failures)} input(s) failed, {self.done} done; see {self.failures_path} "
            f"(first: {self.failures[0][0]}: {self.failures[0][1]})."
        )
