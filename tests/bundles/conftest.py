"""The bundle suite's helpers and fixtures live in ``tests/bundle_testing.py``; re-exported here for the tests
of this folder that import them from ``conftest``."""

from bundle_testing import (  # noqa: F401
    BUNDLES, REPO, SCHEMA, SPECS, assert_same_outputs, load_spec, run_cli, save_untrained_weights,
)
