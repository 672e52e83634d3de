"""Ignite handlers of the collection: resumable training, guards, evaluation reports."""

from .checkpoints import ModelSaver, ResumableCheckpoint, check_finite_state, epoch_seed
from .early_stop import ResumableEarlyStopHandler
from .folder_run import FolderRun, FolderRunError
from .instance_report import InstanceSegmentationReport
from .nonfinite import StopOnNonFiniteLoss, batch_sources
from .report import MetricsReport, source_name
from .semantic_report import SemanticSegmentationReport
