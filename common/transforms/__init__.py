"""MONAI transforms of the collection, each as an array class and a dictionary (``...d``) class.

Dictionary transforms derive from :class:`ArrayMapTransform` (random ones from :class:`RandArrayMapTransform`).
Post-processing transforms (network output to instances) are in :mod:`common.postprocess`, numerical helpers
in :mod:`common.ops`.
"""

from .base import ArrayMapTransform, RandArrayMapTransform
from .boundary import (
    InstanceToBoundaryTargets,
    InstanceToBoundaryTargetsd,
    instance_to_boundary_targets,
)
from .cell_intensity import (
    NonZeroPercentileNormalize,
    NonZeroPercentileNormalized,
    RandCellAwareIntensity,
    RandCellAwareIntensityd,
)
from .cell_labels import BoundaryExclusion, BoundaryExclusiond
from .channels import AsChannels, AsChannelsd, ReorderChannels, ReorderChannelsd
from .checks import CheckSpatialShapesd, SourceCompose
from .flows import LabelsToFlows, LabelsToFlowsd
from .intensity import (
    Quantise,
    Quantised,
    ScalePercentiles,
    ScalePercentilesd,
    Whiten,
    Whitend,
    quantise,
)
from .meta import CopyItemsToMetad, source_file
from .partial_targets import (
    ConcatChannels,
    ConcatChannelsd,
    RandSliceAndTarget,
    RandSliceAndTargetd,
)
from .pixel_size import MatchPixelSize, MatchPixelSized
from .projection import MaxIntensityProjection, MaxIntensityProjectiond
from .tiles import (
    MergeTiles,
    MergeTilesd,
    Tile,
    Tiled,
    merge_tiles,
    tile_grid_shape,
    tile_image,
)

__all__ = [
    "ArrayMapTransform",
    "AsChannels",
    "AsChannelsd",
    "BoundaryExclusion",
    "BoundaryExclusiond",
    "CheckSpatialShapesd",
    "ConcatChannels",
    "ConcatChannelsd",
    "CopyItemsToMetad",
    "InstanceToBoundaryTargets",
    "InstanceToBoundaryTargetsd",
    "LabelsToFlows",
    "LabelsToFlowsd",
    "MatchPixelSize",
    "MatchPixelSized",
    "MaxIntensityProjection",
    "MaxIntensityProjectiond",
    "MergeTiles",
    "MergeTilesd",
    "NonZeroPercentileNormalize",
    "NonZeroPercentileNormalized",
    "Quantise",
    "Quantised",
    "RandArrayMapTransform",
    "RandCellAwareIntensity",
    "RandCellAwareIntensityd",
    "RandSliceAndTarget",
    "RandSliceAndTargetd",
    "ReorderChannels",
    "ReorderChannelsd",
    "ScalePercentiles",
    "ScalePercentilesd",
    "SourceCompose",
    "Tile",
    "Tiled",
    "Whiten",
    "Whitend",
    "instance_to_boundary_targets",
    "merge_tiles",
    "quantise",
    "source_file",
    "tile_grid_shape",
    "tile_image",
]
