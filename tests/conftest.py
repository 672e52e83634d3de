import os
import sys

import torch

# tests import tests/helpers.py as a module
sys.path.insert(0, os.path.dirname(__file__))
# two threads alone; one per worker when pytest-xdist runs tests side by side
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))

# the bundles' fixtures, for tests/bundles and tests/reliability
from bundle_testing import bundle, dataset, reference_outputs, release, spec  # noqa: E402,F401
