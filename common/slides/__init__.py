"""Whole slides larger than memory: blockwise inference of any bundle on Dask, with seams stitched."""

from .blocks import Block, block_grid
from .engine import BlockLedger, SlideInference
from .normalise import with_image_statistics
from .predict import BlockOutput, BlockPredictor
from .statistics import KeyPrefix, image_statistics, mean_std, min_max, percentiles
from .stitch import CELL_DTYPE, BlockInstances, SeamError, label_dtype, seam_crossings, stitch_block
