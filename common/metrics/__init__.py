"""Challenge metrics: object matching (F1 at IoU thresholds) and their MONAI metric classes."""

from .cumulative import InstanceF1Metric
from .instance import CAICEDO_THRESHOLDS, f1_from_iou, iou_matrix, match_from_iou, match_instances, mean_average_f1

__all__ = [
    "CAICEDO_THRESHOLDS",
    "InstanceF1Metric",
    "f1_from_iou",
    "iou_matrix",
    "match_from_iou",
    "match_instances",
    "mean_average_f1",
]

from .semantic import semantic_scores

__all__ += ["semantic_scores"]

from .fluorescence import FluorescenceScores, mae_over_median, median, psnr

__all__ += ["FluorescenceScores", "mae_over_median", "median", "psnr"]
