"""Bundle tooling: offline verification and self-contained export."""

from .export import export_bundle, zip_name
from .verify import REQUIRED_FILES, BundleCheckError, verify_bundle
