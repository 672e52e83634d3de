"""MONAI transforms of the collection, each as an array class and a dictionary (``...d``) class."""

from .boundary import InstanceToBoundaryTargets, InstanceToBoundaryTargetsd, instance_to_boundary_targets
from .cell_labels import BoundaryExclusion, BoundaryExclusiond, RemoveBorderInstances, RemoveBorderInstancesd
from .channels import AsChannels, AsChannelsd
from .flows import FlowsToLabels, FlowsToLabelsd, LabelsToFlows, LabelsToFlowsd
from .cell_intensity import CellAwareIntensity, CellAwareIntensityd, NonZeroPercentileNormalize, NonZeroPercentileNormalized

__all__ = [
    "AsChannels",
    "AsChannelsd",
    "BoundaryExclusion",
    "BoundaryExclusiond",
    "CellAwareIntensity",
    "CellAwareIntensityd",
    "FlowsToLabels",
    "FlowsToLabelsd",
    "InstanceToBoundaryTargets",
    "InstanceToBoundaryTargetsd",
    "LabelsToFlows",
    "LabelsToFlowsd",
    "NonZeroPercentileNormalize",
    "NonZeroPercentileNormalized",
    "RemoveBorderInstances",
    "RemoveBorderInstancesd",
    "instance_to_boundary_targets",
]

from .intensity import ScalePercentiles, ScalePercentilesd, Whiten, Whitend, percentile, scale_percentiles, whiten
from .partial_targets import ConcatChannels, ConcatChannelsd, RandSliceAndTarget, RandSliceAndTargetd

__all__ += [
    "ConcatChannels",
    "ConcatChannelsd",
    "RandSliceAndTarget",
    "RandSliceAndTargetd",
    "ScalePercentiles",
    "ScalePercentilesd",
    "Whiten",
    "Whitend",
    "percentile",
    "scale_percentiles",
    "whiten",
]
