"""Bundle tooling: checkpoints for resuming, offline verification, self-contained export."""

from .checkpoints import latest_checkpoint
from .export import export_bundle, zip_name
from .verify import REQUIRED_FILES, BundleCheckError, verify_bundle
from .weights import available_checkpoints, load_weights
