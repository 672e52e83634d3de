import os
import sys

import torch

# tests import tests/helpers.py as a module
sys.path.insert(0, os.path.dirname(__file__))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
