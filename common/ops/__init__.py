"""Numerical helpers shared by transforms, losses, metrics and post-processing.

The lowest layer of ``common``: it imports nothing from the rest of the package, so every other layer may
import it. Functions take and return tensors on the input's device (label helpers: NumPy).
"""

from .correlation import pearson_correlation
from .intensity import scale_percentiles, whiten
from .labels import as_label_array, remove_border_instances
from .statistics import median, percentile

__all__ = [
    "as_label_array",
    "median",
    "pearson_correlation",
    "percentile",
    "remove_border_instances",
    "scale_percentiles",
    "whiten",
]
