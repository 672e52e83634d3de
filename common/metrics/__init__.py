"""Challenge metrics: object matching (F1 at IoU thresholds)."""

from .instance import CAICEDO_THRESHOLDS, iou_matrix, match_instances, mean_average_f1

__all__ = ["CAICEDO_THRESHOLDS", "iou_matrix", "match_instances", "mean_average_f1"]
