"""Evaluation report of foreground segmentation: Dice, IoU and confluence per image, means, confluence RMSE."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Callable

import torch

from common.handlers.distributed import shard_index
from common.handlers.report import MetricsReport, column_means, source_name
from common.metrics.semantic import semantic_scores

__all__ = ["SemanticSegmentationReport"]


def _summarise(rows: Sequence[Mapping], group_by: Sequence[str]) -> dict:
    """Column means of ``rows``, the RMSE of their confluence errors, and the same per value of each field."""
    errors = [row["confluence_error"] for row in rows if "confluence_error" in row]
    summary = column_means(rows)
    summary.pop("confluence_error", None)  # its mean is the bias, reported as such
    if errors:
        summary["confluence_rmse"] = math.sqrt(sum(error * error for error in errors) / len(errors))
        summary["confluence_bias"] = sum(errors) / len(errors)
    groups = {}
    for field in group_by:
        values = sorted({str(row[field]) for row in rows if field in row})
        groups[field] = {
            value: {"rows": len(members), **_summarise(members, ())}
            for value in values
            for members in [[row for row in rows if str(row.get(field)) == value]]
        }
    return {**summary, **({"groups": groups} if groups else {})}


class SemanticSegmentationReport(MetricsReport):
    """Handler writing Dice, IoU and confluence of every image of an evaluator run.

    Per image (one CSV row, or one per prediction channel when ``channel_names`` is given): ``dice``, ``iou``,
    ``confluence_pred``, ``confluence_true`` (percent of the image) and ``confluence_error`` (percentage points),
    plus the fields ``fields_from_name`` reads from the image's file name (e.g. the LIVECell cell type). The JSON
    has the means, ``confluence_rmse`` (root mean square of the errors), ``confluence_bias`` (their mean) and
    the same for each value of each ``group_by`` field; with ``channel_names``, one such block per channel
    under ``"methods"``. Means over images of a single prediction go into ``engine.state.metrics``.

    Args:
        output_dir: folder of the report (created if absent).
        channel_names: names of the prediction channels, each scored against the one-channel label (e.g. the
            threshold methods of :class:`common.baselines.ThresholdBaseline`); None: a one-channel prediction.
        fields_from_name: file name -> ``{field: value}`` added to the image's rows.
        group_by: row fields to break the means down by.
        pred_key, label_key: keys of the ``(C, H, W)`` binary prediction and the ``(1, H, W)`` true mask.
        name: file name stem of the report.
        image_key: key whose source file names the image.
        overwrite: replace the report of an earlier run (see :class:`MetricsReport`).
    """

    def __init__(
        self,
        output_dir: str,
        channel_names: Sequence[str] | None = None,
        fields_from_name: Callable[[str], Mapping[str, str]] | None = None,
        group_by: Sequence[str] = (),
        pred_key: str = "pred",
        label_key: str = "label",
        name: str = "semantic_metrics",
        image_key: str = "image",
        overwrite: bool = False,
    ) -> None:
        super().__init__(output_dir, self.score_pair, pred_key, label_key, group_by, name, image_key, overwrite)
        self.channel_names = list(channel_names) if channel_names is not None else None
        self.fields_from_name = fields_from_name

    def score_pair(self, pred, label, item: Mapping) -> list[dict]:
        """One row per prediction channel of one image."""
        pred, label = torch.as_tensor(pred), torch.as_tensor(label)
        channels: list[str | None] = [*self.channel_names] if self.channel_names else [None]
        if pred.ndim != 3 or pred.shape[0] != len(channels):
            raise ValueError(
                f"{type(self).__name__}: expected a ({len(channels)}, H, W) prediction, got {tuple(pred.shape)}."
            )
        scores = semantic_scores(pred[None], label.to(pred.device)[None])
        image = source_name(item, self.image_key, shard_index(self.images))
        fields = dict(self.fields_from_name(image)) if self.fields_from_name else {}
        rows = []
        for index, channel in enumerate(channels):
            row: dict[str, object] = {"image": image, **({"method": channel} if channel is not None else {}), **fields}
            row.update({key: float(value[0, index]) for key, value in scores.items()})
            rows.append(row)
        return rows

    def summary(self) -> dict:
        if self.channel_names is None:
            return {"images": self.images, **_summarise(self.rows, self.group_by)}
        methods = {
            name: _summarise([row for row in self.rows if row["method"] == name], self.group_by)
            for name in self.channel_names
        }
        return {"images": self.images, "methods": methods}

    def log(self, summary: Mapping) -> None:
        blocks = summary["methods"].items() if "methods" in summary else [("", summary)]
        for name, block in blocks:
            self.logger.info(
                "%d images%s: Dice %.4f, IoU %.4f, confluence RMSE %.2f points (bias %+.2f); report in %s",
                summary["images"],
                f" {name}" if name else "",
                block["dice"],
                block["iou"],
                block["confluence_rmse"],
                block["confluence_bias"],
                self.output_dir / f"{self.name}.json",
            )
