"""Post-processing from network outputs to instance labels."""

from .border import RemoveBorderInstances, RemoveBorderInstancesd
from .flows import FlowsToLabels, FlowsToLabelsd
from .morphology import binary_dilation, binary_erosion, disk
from .pixel_size import ResampleToInputGrid, ResampleToInputGridd
from .thresholds import (
    THRESHOLD_METHODS,
    huang_threshold,
    image_histograms,
    max_entropy_threshold,
    otsu_threshold,
    threshold_images,
    triangle_threshold,
)
from .watershed import (
    LANDSCAPES,
    ForegroundMask,
    ForegroundMaskd,
    LabelMarkers,
    LabelMarkersd,
    MarkerWatershed,
    MarkerWatershedd,
    RemoveSmallInstances,
    RemoveSmallInstancesd,
    SubtractBoundary,
    SubtractBoundaryd,
    WatershedLandscape,
    WatershedLandscaped,
)
