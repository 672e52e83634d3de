"""Bundle tooling: checkpoints for resuming, offline verification, self-contained export."""

from .checkpoints import latest_checkpoint
from .weights import available_checkpoints, load_weights
