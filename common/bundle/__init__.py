"""Bundle tooling: a bundle's inference config for the runs that use its models, offline verification and
self-contained export."""

from .configs import inference_config
from .export import export_bundle, zip_name
from .verify import REQUIRED_FILES, BundleCheckError, verify_bundle
