"""Whole slides larger than memory: blockwise inference of any bundle on Dask, with seams stitched."""

from .stitch import CELL_DTYPE, BlockInstances, SeamError, label_dtype, seam_crossings, stitch_block
