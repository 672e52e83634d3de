"""Losses the bundles share."""

from .dice_bce import WeightedDiceBCELoss
from .fluorescence import L1L2PCCLoss, PCCLoss
