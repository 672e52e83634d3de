"""Challenge metrics: object matching (F1 at IoU thresholds) and their MONAI metric classes."""

from .adipocyte import (
    AdipocyteScores,
    PooledMaeOverMedian,
    mae_over_median,
    median_of_counts,
    psnr,
)
from .cellseg import cellseg_counts, cellseg_f1, cellseg_score
from .cumulative import CellSegF1Metric, InstanceF1Metric
from .fluorescence import (
    LMC_METRICS,
    FluorescenceMetric,
    LightMyCellsScore,
    cosine_distance,
    euclidean_distance,
    light_my_cells_metrics,
    mean_absolute_error,
    normalise_for_metrics,
    structural_similarity,
)
from .instance import (
    CAICEDO_THRESHOLDS,
    f1_from_iou,
    iou_matrix,
    match_from_iou,
    match_instances,
    mean_average_f1,
)
from .semantic import semantic_scores

__all__ = [
    "CAICEDO_THRESHOLDS",
    "CellSegF1Metric",
    "InstanceF1Metric",
    "cellseg_counts",
    "cellseg_f1",
    "cellseg_score",
    "f1_from_iou",
    "iou_matrix",
    "match_from_iou",
    "match_instances",
    "mean_average_f1",
    "LMC_METRICS",
    "FluorescenceMetric",
    "LightMyCellsScore",
    "cosine_distance",
    "euclidean_distance",
    "light_my_cells_metrics",
    "mean_absolute_error",
    "normalise_for_metrics",
    "structural_similarity",
    "semantic_scores",
    "AdipocyteScores",
    "mae_over_median",
    "psnr",
    "PooledMaeOverMedian",
    "median_of_counts",
]
