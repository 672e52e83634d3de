"""Bundle tooling: checkpoints for resuming, offline verification, self-contained export."""

from .checkpoints import check_choice, latest_checkpoint, save_weights
from .export import export_bundle, zip_name
from .verify import REQUIRED_FILES, BundleCheckError, verify_bundle
from .weights import available_checkpoints, load_weights
