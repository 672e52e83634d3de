"""MONAI transforms of the collection, each as an array class and a dictionary (``...d``) class."""

from .boundary import InstanceToBoundaryTargets, InstanceToBoundaryTargetsd, instance_to_boundary_targets
from .cell_intensity import CellAwareIntensity, CellAwareIntensityd, NonZeroPercentileNormalize, NonZeroPercentileNormalized
from .cell_labels import BoundaryExclusion, BoundaryExclusiond, RemoveBorderInstances, RemoveBorderInstancesd
from .channels import AsChannels, AsChannelsd, ReorderChannels, ReorderChannelsd
from .checks import CheckSpatialShapesd, SourceCompose
from .flows import FlowsToLabels, FlowsToLabelsd, LabelsToFlows, LabelsToFlowsd
from .intensity import ScalePercentiles, ScalePercentilesd, Whiten, Whitend, percentile, scale_percentiles, whiten
from .intensity import Quantise, Quantised, quantise
from .meta import CopyItemsToMetad, source_file
from .partial_targets import ConcatChannels, ConcatChannelsd, RandSliceAndTarget, RandSliceAndTargetd
from .projection import MaxIntensityProjection, MaxIntensityProjectiond
from .tiles import MergeTiles, MergeTilesd, Tile, Tiled, merge_tiles, tile_grid_shape, tile_image

__all__ = [
    "AsChannels",
    "AsChannelsd",
    "BoundaryExclusion",
    "BoundaryExclusiond",
    "CellAwareIntensity",
    "CellAwareIntensityd",
    "CheckSpatialShapesd",
    "ConcatChannels",
    "ConcatChannelsd",
    "CopyItemsToMetad",
    "FlowsToLabels",
    "FlowsToLabelsd",
    "InstanceToBoundaryTargets",
    "InstanceToBoundaryTargetsd",
    "LabelsToFlows",
    "LabelsToFlowsd",
    "MaxIntensityProjection",
    "MaxIntensityProjectiond",
    "MergeTiles",
    "MergeTilesd",
    "NonZeroPercentileNormalize",
    "NonZeroPercentileNormalized",
    "Quantise",
    "Quantised",
    "RandSliceAndTarget",
    "RandSliceAndTargetd",
    "RemoveBorderInstances",
    "ReorderChannels",
    "ReorderChannelsd",
    "RemoveBorderInstancesd",
    "ScalePercentiles",
    "ScalePercentilesd",
    "SourceCompose",
    "Tile",
    "Tiled",
    "Whiten",
    "Whitend",
    "instance_to_boundary_targets",
    "merge_tiles",
    "percentile",
    "quantise",
    "scale_percentiles",
    "source_file",
    "tile_grid_shape",
    "tile_image",
    "whiten",
]
