"""Ignite handlers of the collection: resumable training, guards, evaluation reports and pictures."""

from .checkpoints import ModelSaver, ResumableCheckpoint, check_finite_state, epoch_seed
from .early_stop import ResumableEarlyStopHandler
from .folder_run import FolderRun, FolderRunError
from .instance_report import InstanceSegmentationReport
from .nonfinite import StopOnNonFiniteLoss, batch_sources
from .panels import LazySummaryWriter, MetricDistributionPlot, PanelWriter, TensorBoardPanel, render_panel
from .report import MetricsReport, engine_items, source_name
from .semantic_report import SemanticSegmentationReport
from .tracking import close_tracking
