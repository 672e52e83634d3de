"""Ignite handlers of the collection: evaluation reports."""

from .instance_report import InstanceSegmentationReport
from .report import MetricsReport, source_name
from .semantic_report import SemanticSegmentationReport
