"""Ignite handlers of the collection."""

from .instance_report import InstanceSegmentationReport
