"""Networks MONAI lacks, and helpers for configuring MONAI's."""

from .batch_norm import with_batch_norm_momentum
from .threshold_baseline import ThresholdBaseline
