"""Evaluation report: rows of per-image scores written as CSV, their means (overall and per group) as JSON."""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from ignite.engine import Engine, Events

from ..io.atomic import atomic_path
from ..transforms.meta import source_file
from .distributed import all_gather, gather_shards, rank_and_world, shard_index

__all__ = ["MetricsReport", "engine_items", "source_name"]

Score = Callable[[Any, Any, Mapping], "Mapping[str, Any] | Sequence[Mapping[str, Any]]"]


def source_name(item: Mapping, key: str, index: int) -> str:
    """Name of the file the decollated ``item`` came from (:func:`common.transforms.source_file` of ``key``), else a
    numbered name."""
    source = source_file(item, [key])
    return Path(source).name if source else f"image_{index:05d}"


def engine_items(engine: Engine) -> list:
    """The decollated output of the engine's last iteration, each item merged with its batch item's fields."""
    # ignite's State annotates output and batch as int | None; MONAI engines keep lists of dicts there
    output: Any = engine.state.output
    batch: Any = engine.state.batch
    outputs = output if isinstance(output, list) else [output]
    # MONAI engines keep the dataset's own fields (e.g. modality) in the decollated batch, not in the output
    batches = batch if isinstance(batch, list) and len(batch) == len(outputs) else [{}] * len(outputs)
    return [{**fields, **item} if isinstance(fields, Mapping) else item for fields, item in zip(batches, outputs)]


def tracker_key(column: str) -> str:
    """``column`` as a metric name experiment trackers accept (MLflow: word characters, ``-. :/``): each other
    character becomes ``_`` (``f1@0.50`` -> ``f1_0.50``)."""
    return re.sub(r"[^\w\-. :/]", "_", column)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def natural_key(text: str) -> list:
    """Sort key ordering the digit runs of ``text`` by value: "z 2" before "z 10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def column_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean of every numeric column over the rows that have it (NaN values left out), in first-seen order."""
    values: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for key, value in row.items():
            if _is_number(value) and not math.isnan(value):
                values[key].append(float(value))
    return {key: sum(column) / len(column) for key, column in values.items() if column}


class MetricsReport:
    """Handler writing per-image scores of an evaluator run, overall and per group.

    After each iteration, ``score(pred, label, item)`` is called for every decollated item of the batch; it returns
    one row (a mapping of column to value) or several (e.g. one per organelle of the image). Each row gets the
    image's file name and the item's ``group_by`` fields where it lacks them. When the run completes it writes
    ``<output_dir>/<name>.csv`` (one line per row) and ``<output_dir>/<name>.json``:
    ``{"images": n, <column>: overall mean, ..., "groups": {field: {value: {"rows": k, <column>: mean}}}}``,
    logs the overall means and puts them into ``engine.state.metrics`` (named by :func:`tracker_key`).

    Under ``torch.distributed`` with several ranks, each evaluating its interleaved shard of the dataset
    (:func:`common.handlers.distributed.shard`, as ``multi_gpu_evaluate.json`` sets), the rows of
    all ranks are gathered back into the dataset's order before the summary, so the files are those of a
    single-process run; rank 0 alone writes and logs them, every rank gets the metrics.

    Args:
        output_dir: folder of the report (created if absent).
        score: ``(pred, label, item) -> row | rows``; ``pred`` and ``label`` are ``item[pred_key]``,
            ``item[label_key]``. A score with ``reset()`` and ``summary() -> dict`` (figures pooled over the run)
            has them called at the start of each run and merged into the JSON summary; to be pooled over
            distributed ranks it also needs ``state()`` (picklable) and ``merge_states(states)`` (every rank's).
        pred_key, label_key: keys of the prediction and the ground truth in the decollated engine output.
        group_by: item fields (str values such as ``cell_type``, ``modality``) or row columns to group means by.
        name: file name stem of the report.
        image_key: key whose source file names the image.
        overwrite: replace the report files of an earlier run; without it they are an error when the handler is
            attached, before any work is done.
    """

    def __init__(
        self,
        output_dir: str,
        score: Score,
        pred_key: str = "pred",
        label_key: str = "label",
        group_by: Sequence[str] = (),
        name: str = "metrics",
        image_key: str = "image",
        overwrite: bool = False,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.score = score
        self.pred_key, self.label_key, self.image_key, self.name = pred_key, label_key, image_key, name
        self.group_by = tuple(group_by)
        self.overwrite = overwrite
        self.rows: list[dict] = []
        self.row_counts: list[int] = []  # rows of each image, in order
        self.images = 0
        self.logger = logging.getLogger(type(self).__module__)

    @property
    def paths(self) -> tuple[Path, Path]:
        """The report's CSV and JSON files."""
        return self.output_dir / f"{self.name}.csv", self.output_dir / f"{self.name}.json"

    def attach(self, engine: Engine) -> None:
        existing = [str(path) for path in self.paths if path.exists()]
        if existing and not self.overwrite:
            raise FileExistsError(
                f"{existing}: report of an earlier evaluation; pass --overwrite True to replace "
                f"it, or choose another --output_dir."
            )
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def reset(self, engine: Engine | None = None) -> None:
        self.rows, self.row_counts, self.images = [], [], 0
        reset = getattr(self.score, "reset", None)
        if callable(reset):
            reset()

    def _item_rows(self, item: Mapping) -> list[dict]:
        for key in (self.pred_key, self.label_key):
            if key not in item:
                raise KeyError(f"{type(self).__name__}: the engine output has no {key!r} (keys: {sorted(item)}).")
        scored = self.score(item[self.pred_key], item[self.label_key], item)
        rows = [dict(scored)] if isinstance(scored, Mapping) else [dict(row) for row in scored]
        image = source_name(item, self.image_key, shard_index(self.images))
        for row in rows:
            row.setdefault("image", image)
            for field in self.group_by:
                if field not in row and field in item:
                    row[field] = str(item[field])
        return rows

    def collect(self, engine: Engine) -> None:
        for item in engine_items(engine):
            rows = self._item_rows(item)
            self.rows.extend(rows)
            self.row_counts.append(len(rows))
            self.images += 1

    def gather(self) -> None:
        """With several ``torch.distributed`` ranks (a collective call, on every rank): replace this rank's rows
        by all ranks' in the dataset's order, and pool the score's running figures over the ranks."""
        if rank_and_world()[1] == 1:
            return
        pooled = callable(getattr(self.score, "summary", None))
        if pooled and not (callable(getattr(self.score, "state", None)) and hasattr(self.score, "merge_states")):
            raise TypeError(
                f"{type(self).__name__} {self.name}: {type(self.score).__name__} pools figures over the run "
                f"(summary()) but has no state() and merge_states() to pool them over distributed ranks."
            )
        ends = itertools.accumulate(self.row_counts)
        images = gather_shards([self.rows[end - count : end] for end, count in zip(ends, self.row_counts)])
        self.rows = [row for rows in images for row in rows]
        self.row_counts, self.images = [len(rows) for rows in images], len(images)
        if pooled:
            self.score.merge_states(all_gather(self.score.state()))  # type: ignore[attr-defined]

    def summary(self) -> dict:
        """Image count, overall column means and, for each ``group_by`` field, the means per value."""
        groups: dict[str, dict[str, dict]] = {}
        for field in self.group_by:
            members: dict[str, list[dict]] = defaultdict(list)
            for row in self.rows:
                if field in row:
                    members[str(row[field])].append(row)
            ordered = sorted(members.items(), key=lambda pair: natural_key(pair[0]))
            groups[field] = {value: {"rows": len(rows), **column_means(rows)} for value, rows in ordered}
        pooled_summary = getattr(self.score, "summary", None)
        pooled = pooled_summary() if callable(pooled_summary) else {}
        return {"images": self.images, **column_means(self.rows), **pooled, **({"groups": groups} if groups else {})}

    def write_files(self, summary: Mapping) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        columns.sort(key=lambda key: key != "image")
        csv_path, json_path = self.paths
        with atomic_path(csv_path) as partial, open(partial, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(self.rows)
        with atomic_path(json_path) as partial:
            partial.write_text(json.dumps(summary, indent=2) + "\n")

    def log(self, summary: Mapping) -> None:
        means = ", ".join(
            f"{key} {value:.4f}" for key, value in summary.items() if _is_number(value) and key != "images"
        )
        self.logger.info("%d images: %s; report in %s", summary["images"], means, self.output_dir / f"{self.name}.json")

    def write(self, engine: Engine) -> None:
        self.gather()
        if not self.rows:
            raise RuntimeError(f"{type(self).__name__}: the evaluator saw no images, nothing to report.")
        summary = self.summary()
        engine.state.metrics.update({tracker_key(k): v for k, v in summary.items() if _is_number(v) and k != "images"})
        if rank_and_world()[0] == 0:  # every rank holds the same rows now; one writes them
            self.write_files(summary)
            self.log(summary)
