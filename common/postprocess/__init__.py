"""Post-processing from network outputs to instance labels."""

from .watershed import (
    BoundaryWatershed,
    BoundaryWatershedd,
    foreground_mask,
    remove_small_instances,
    watershed_instances,
    watershed_markers,
)
