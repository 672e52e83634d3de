"""Folder inference that finishes what it can and resumes: skip what is done, go on past bad files, report them.

:class:`FolderRun` keeps, beside the outputs, ``inference_log.csv``: one line per input once all its outputs are
written (``done``, with their paths) or once it failed (``failed``, with the error). A run:

1. skips the inputs the log marks done whose outputs all exist, and says how many (``overwrite`` redoes all);
2. turns an error while reading, predicting or writing one input into a ``failed`` line and goes on;
3. at the end writes ``failures.csv`` (input, error) when any input failed and raises :class:`FolderRunError`, so
   the command exits non-zero after doing everything it could.

Outputs are written beside and renamed (see :mod:`common.io.atomic`), so a kill leaves complete files and
hidden ``.partial`` leftovers, which the next run deletes; the same command then ends with exactly the outputs of
an uninterrupted run.

Under ``torch.distributed`` (``torchrun`` with ``multi_gpu_inference.json``) every rank reads the same records,
takes its interleaved shard of the inputs still to do (:func:`common.handlers.distributed.shard`) and logs to its
own ``inference_log.rank<r>.csv``; :meth:`FolderRun.finish_ranks` (the overlay's ``finalize``) then has rank 0
merge them into ``inference_log.csv`` and write ``failures.csv``. A run killed before that leaves the rank logs,
which every later run reads, whatever its number of ranks. In a bundle's ``inference.json``::

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
from .distributed import all_gather, barrier, rank_and_world, shard
from .report import natural_key

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
        self.main_log_path = self.output_dir / "inference_log.csv"
        self.log_path = self.main_log_path  # this process's log: inference_log.rank<r>.csv with several ranks
        self.failures_path = self.output_dir / "failures.csv"
        self.failures: list[tuple[str, str]] = []
        self.done = 0

    def _input_file(self, item: Any) -> str:
        """Input file of a datalist item, a collated batch (its first) or a decollated output."""
        return source_file(item, [self.image_key]) or "(unknown input)"

    # --- before the run ---------------------------------------------------------------------------------------
    def logs(self) -> list[Path]:
        """The record files in the output folder: ``inference_log.csv``, then the ranks' (sorted by rank)."""
        ranks = sorted(self.output_dir.glob("inference_log.rank*.csv"), key=lambda path: natural_key(path.name))
        return ([self.main_log_path] if self.main_log_path.is_file() else []) + ranks

    def records(self) -> list[dict[str, str]]:
        """The complete lines of every record file (see :meth:`logs`), in order."""
        rows = []
        for path in self.logs():
            with open(path, newline="") as stream:
                for row in csv.DictReader(stream):
                    if None in row.values() or row.get("status") not in ("done", "failed"):
                        continue  # a line cut short by a kill
                    rows.append(row)
        return rows

    def completed(self) -> set[str]:
        """Inputs the records mark done (their last line) whose recorded outputs all exist (files, or OME-Zarr
        stores: folders renamed into place once complete)."""
        finished = {row["input"]: row for row in self.records()}
        return {
            source
            for source, row in finished.items()
            if row["status"] == "done"
            and all((self.output_dir / name).exists() for name in row["outputs"].split(";") if name)
        }

    def pending(self, datalist: Sequence[Mapping]) -> list[dict]:
        """The items of ``datalist`` still to do (this rank's shard of them under ``torch.distributed``); starts
        the log (a new one with ``overwrite``)."""
        rank, world = rank_and_world()
        if rank == 0:  # the others wait, so that nobody's output is being written while partials are removed
            self.output_dir.mkdir(parents=True, exist_ok=True)
            remove_partials(self.output_dir)
            self.failures_path.unlink(missing_ok=True)  # this run writes its own, if any input fails again
            if self.overwrite:
                for path in self.logs():
                    path.unlink()
        barrier()
        done = self.completed()
        barrier()  # every rank has read the records before any rank adds to them: all shard the same list
        todo = [dict(item) for item in datalist if self._input_file(item) not in done]
        skipped = len(datalist) - len(todo)
        if skipped and rank == 0:
            logger.info(
                "%s: %d of %d inputs already done, skipped (--overwrite True redoes them); %d to do.",
                self.output_dir,
                skipped,
                len(datalist),
                len(todo),
            )
        if world > 1:
            self.log_path = self.output_dir / f"inference_log.rank{rank}.csv"
        if not self.log_path.is_file():
            with atomic_path(self.log_path) as partial:
                partial.write_text(",".join(LOG_FIELDS) + "\n")
        self.failures, self.done = [], 0
        return shard(todo)

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
        """Write ``failures.csv`` and raise :class:`FolderRunError` if any input failed; with several ranks
        nothing (a rank whose shard is empty never completes a run): :meth:`finish_ranks` does it."""
        if rank_and_world()[1] == 1:
            if self.logs() != [self.main_log_path]:  # rank logs of an earlier distributed run that was killed
                self.merge_logs()
            self._conclude(self.failures, self.done)

    def finish_ranks(self) -> None:
        """End of a run whose ranks each took a shard (``multi_gpu_inference.json``'s ``finalize``; a collective
        call, on every rank; nothing without a process group): rank 0 merges the ranks' logs into
        ``inference_log.csv`` and writes ``failures.csv``; every rank raises :class:`FolderRunError` if any input
        of any rank failed."""
        rank, world = rank_and_world()
        if world == 1:
            return
        parts = all_gather((self.failures, self.done))  # also waits for every rank's last log line
        failures = [failure for part, _ in parts for failure in part]
        if rank == 0:
            self.merge_logs()
        self._conclude(failures, sum(done for _, done in parts), write=rank == 0)

    def merge_logs(self) -> None:
        """Fold the ranks' record files into ``inference_log.csv`` (written beside and renamed) and delete them."""
        ranks = [path for path in self.logs() if path != self.main_log_path]
        rows = self.records()
        with atomic_path(self.main_log_path) as partial, open(partial, "w", newline="") as stream:
            stream.write(",".join(LOG_FIELDS) + "\n")  # as pending() and _append() write a log
            csv.writer(stream).writerows([row[field] for field in LOG_FIELDS] for row in rows)
        for path in ranks:
            path.unlink()
        self.log_path = self.main_log_path

    def _conclude(self, failures: Sequence[tuple[str, str]], done: int, write: bool = True) -> None:
        """Write ``failures.csv`` (``write``; or remove an earlier one) and raise if any input failed."""
        if write and failures:
            with atomic_path(self.failures_path) as partial, open(partial, "w", newline="") as stream:
                writer = csv.writer(stream)
                writer.writerow(["input", "error"])
                writer.writerows(failures)
        elif write:
            self.failures_path.unlink(missing_ok=True)
        if failures:
            raise FolderRunError(
                f"{len(failures)} input(s) failed, {done} done; see {self.failures_path} "
                f"(first: {failures[0][0]}: {failures[0][1]})."
            )
