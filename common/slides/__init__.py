"""Whole slides larger than memory: blockwise inference of any bundle on Dask, with seams stitched."""

from .statistics import KeyPrefix, image_statistics, mean_std, min_max, percentiles

__all__ = ["KeyPrefix", "image_statistics", "mean_std", "min_max", "percentiles"]
