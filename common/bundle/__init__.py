"""Bundle tooling: offline verification, self-contained export, the weights a bundle starts from."""

from .export import export_bundle, zip_name
from .verify import REQUIRED_FILES, BundleCheckError, verify_bundle
from .weights import available_checkpoints, load_weights
