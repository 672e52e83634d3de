"""Post-processing from network outputs to instance labels."""

from .watershed import (
    LANDSCAPES,
    BoundaryWatershed,
    BoundaryWatershedd,
    foreground_mask,
    remove_small_instances,
    watershed_instances,
    watershed_markers,
)
from .morphology import binary_dilation, binary_erosion, disk
from .thresholds import (
    THRESHOLD_METHODS,
    huang_threshold,
    image_histograms,
    max_entropy_threshold,
    otsu_threshold,
    threshold_images,
    triangle_threshold,
)
