"""Evaluation report of instance segmentation: one CSV row per image, a JSON summary, a log line."""

from __future__ import annotations

from collections.abc import Sequence

from common.handlers.report import MetricsReport
from common.metrics.instance import CAICEDO_THRESHOLDS, f1_from_iou, iou_matrix, match_from_iou

__all__ = ["InstanceSegmentationReport"]


class InstanceSegmentationReport(MetricsReport):
    """Handler writing object-matching results of an evaluator run.

    After each iteration it matches every predicted label image of the batch with its ground truth; when the
    run completes it writes ``<output_dir>/<name>.csv`` (per image: counts, precision, recall and F1 at each
    IoU threshold, their mean) and ``<output_dir>/<name>.json`` (means over images), logs the summary and puts
    ``f1_<t>`` and ``mean_f1`` into ``engine.state.metrics`` (``f1@<t>`` in the files).

    Args:
        output_dir: folder of the report (created if absent).
        thresholds: IoU thresholds.
        strict: a hit needs IoU strictly above the threshold (Caicedo et al.); ``False`` for ``>=`` (MEDIAR).
        pred_key: key of the (1, H, W) predicted labels in the decollated engine output.
        label_key: key of the (1, H, W) true labels.
        name: file name stem of the report.
        overwrite: replace the report of an earlier run (see :class:`MetricsReport`).
    """

    def __init__(
        self,
        output_dir: str,
        thresholds: Sequence[float] = CAICEDO_THRESHOLDS,
        strict: bool = True,
        pred_key: str = "pred",
        label_key: str = "label",
        name: str = "instance_metrics",
        overwrite: bool = False,
    ) -> None:
        super().__init__(
            output_dir, self.score_pair, pred_key=pred_key, label_key=label_key, name=name, overwrite=overwrite
        )
        self.thresholds = tuple(float(t) for t in thresholds)
        self.strict = strict

    def score_pair(self, pred, gt, item=None) -> dict:
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

    def summary(self) -> dict:
        return {**super().summary(), "thresholds": list(self.thresholds), "strict": self.strict}

    def log(self, summary) -> None:
        first = f"f1@{self.thresholds[0]:.2f}"
        self.logger.info(
            "%d images: mean F1 over IoU %s = %.4f, %s = %.4f (precision %.4f, recall %.4f); report in %s",
            summary["images"],
            ",".join(f"{t:.2f}" for t in self.thresholds),
            summary["mean_f1"],
            first,
            summary[first],
            summary["precision"],
            summary["recall"],
            self.output_dir,
        )
