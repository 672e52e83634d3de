"""Losses the bundles share."""

from .dice_bce import WeightedDiceBCELoss
from .flow_loss import FlowCellprobLoss
