"""MONAI transforms of the collection, each as an array class and a dictionary (``...d``) class."""

from .boundary import InstanceToBoundaryTargets, InstanceToBoundaryTargetsd, instance_to_boundary_targets
from .cell_intensity import CellAwareIntensity, CellAwareIntensityd, NonZeroPercentileNormalize, NonZeroPercentileNormalized
from .cell_labels import BoundaryExclusion, BoundaryExclusiond, RemoveBorderInstances, RemoveBorderInstancesd
from .channels import AsChannels, AsChannelsd
from .flows import FlowsToLabels, FlowsToLabelsd, LabelsToFlows, LabelsToFlowsd
from .intensity import ScalePercentiles, ScalePercentilesd, Whiten, Whitend, percentile, scale_percentiles, whiten
from .partial_targets import ConcatChannels, ConcatChannelsd, RandSliceAndTarget, RandSliceAndTargetd

__all__ = [
    "AsChannels",
    "AsChannelsd",
    "BoundaryExclusion",
    "BoundaryExclusiond",
    "CellAwareIntensity",
    "CellAwareIntensityd",
    "ConcatChannels",
    "ConcatChannelsd",
    "FlowsToLabels",
    "FlowsToLabelsd",
    "InstanceToBoundaryTargets",
    "InstanceToBoundaryTargetsd",
    "LabelsToFlows",
    "LabelsToFlowsd",
    "NonZeroPercentileNormalize",
    "NonZeroPercentileNormalized",
    "RandSliceAndTarget",
    "RandSliceAndTargetd",
    "RemoveBorderInstances",
    "RemoveBorderInstancesd",
    "ScalePercentiles",
    "ScalePercentilesd",
    "Whiten",
    "Whitend",
    "instance_to_boundary_targets",
    "percentile",
    "scale_percentiles",
    "whiten",
]
