"""MONAI transforms of the collection, each as an array class and a dictionary (``...d``) class."""

from .boundary import InstanceToBoundaryTargets, InstanceToBoundaryTargetsd, instance_to_boundary_targets
from .channels import AsChannels, AsChannelsd
from .flows import FlowsToLabels, FlowsToLabelsd, LabelsToFlows, LabelsToFlowsd

__all__ = [
    "AsChannels",
    "AsChannelsd",
    "FlowsToLabels",
    "FlowsToLabelsd",
    "InstanceToBoundaryTargets",
    "InstanceToBoundaryTargetsd",
    "LabelsToFlows",
    "LabelsToFlowsd",
    "instance_to_boundary_targets",
]
from .projection import MaxIntensityProjection, MaxIntensityProjectiond
from .tiles import MergeTiles, MergeTilesd, Tile, Tiled, merge_tiles, tile_grid_shape, tile_image

__all__ += [
    "MaxIntensityProjection",
    "MaxIntensityProjectiond",
    "MergeTiles",
    "MergeTilesd",
    "Tile",
    "Tiled",
    "merge_tiles",
    "tile_grid_shape",
    "tile_image",
]
from .meta import CopyItemsToMetad

__all__ += ["CopyItemsToMetad"]
