"""Losses the bundles share."""

from .dice_bce import WeightedDiceBCELoss
