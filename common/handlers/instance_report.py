"""Evaluation report of instance segmentation: one CSV row per image, a JSON summary, a log line."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from ignite.engine import Engine, Events

from common.metrics.instance import CAICEDO_THRESHOLDS, f1_from_iou, iou_matrix, match_from_iou

__all__ = ["InstanceSegmentationReport"]


def _name_of(item: dict, key: str, index: int) -> str:
    meta = getattr(item.get(key), "meta", None) or item.get(f"{key}_meta_dict") or {}
    source = meta.get("filename_or_obj")
    if isinstance(source, (list, tuple)):
        source = source[0]
    return Path(str(source)).name if source else f"image_{index:05d}"


class InstanceSegmentationReport:
    """Handler writing object-matching results of an evaluator run.

    After each iteration it matches every predicted label image of the batch with its ground truth; when the
    run completes it writes ``<output_dir>/<name>.csv`` (per image: counts, precision, recall and F1 at each
    IoU threshold, their mean) and ``<output_dir>/<name>.json`` (means over images), logs the summary and puts
    ``f1@<t>`` and ``mean_f1`` into ``engine.state.metrics``.

    Args:
        output_dir: folder of the report (created if absent).
        thresholds: IoU thresholds.
        strict: a hit needs IoU strictly above the threshold (Caicedo et al.); ``False`` for ``>=`` (MEDIAR).
        pred_key: key of the (1, H, W) predicted labels in the decollated engine output.
        label_key: key of the (1, H, W) true labels.
        name: file name stem of the report.
    """

    def __init__(
        self,
        output_dir: str,
        thresholds: Sequence[float] = CAICEDO_THRESHOLDS,
        strict: bool = True,
        pred_key: str = "pred",
        label_key: str = "label",
        name: str = "instance_metrics",
    ) -> None:
        self.output_dir = Path(output_dir)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.strict = strict
        self.pred_key, self.label_key, self.name = pred_key, label_key, name
        self.rows: list[dict] = []
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, lambda _: self.rows.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def score(self, gt, pred) -> dict:
        """Counts, precision and recall at the first threshold, and F1 at every threshold, for one image pair."""
        iou = iou_matrix(gt, pred)
        match = match_from_iou(iou, self.thresholds[0], self.strict)
        f1 = f1_from_iou(iou, self.thresholds, self.strict)
        row = {
            "n_true": match["tp"] + match["fn"],
            "n_pred": match["tp"] + match["fp"],
            "precision": match["precision"],
            "recall": match["recall"],
        }
        row.update({f"f1@{t:.2f}": value for t, value in f1["f1_per_threshold"].items()})
        row["mean_f1"] = f1["mean_f1"]
        return row

    def collect(self, engine: Engine) -> None:
        output = engine.state.output
        for item in output if isinstance(output, list) else [output]:
            row = {"image": _name_of(item, "image", len(self.rows))}
            row.update(self.score(item[self.label_key], item[self.pred_key]))
            self.rows.append(row)

    def summary(self) -> dict:
        """Mean of every numeric column over the images, plus the image count."""
        columns = [key for key in self.rows[0] if key != "image"]
        return {"images": len(self.rows), **{key: float(np.mean([row[key] for row in self.rows])) for key in columns}}

    def write(self, engine: Engine) -> None:
        if not self.rows:
            raise RuntimeError("InstanceSegmentationReport: the evaluator saw no images, nothing to report.")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / f"{self.name}.csv", "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        summary = self.summary()
        summary.update(thresholds=list(self.thresholds), strict=self.strict)
        (self.output_dir / f"{self.name}.json").write_text(json.dumps(summary, indent=2) + "\n")
        for key in ("mean_f1", *(f"f1@{t:.2f}" for t in self.thresholds)):
            engine.state.metrics[key] = summary[key]
        self.logger.info(
            "%d images: mean F1 over IoU %s = %.4f, F1@%.2f = %.4f (precision %.4f, recall %.4f); report in %s",
            summary["images"], ",".join(f"{t:.2f}" for t in self.thresholds), summary["mean_f1"],
            self.thresholds[0], summary[f"f1@{self.thresholds[0]:.2f}"], summary["precision"], summary["recall"],
            self.output_dir,
        )
