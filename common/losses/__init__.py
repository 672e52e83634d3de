"""Losses the bundles share."""

from .dice_bce import WeightedDiceBCELoss
from .flow_loss import FlowCellprobLoss
from .fluorescence import L1L2PCCLoss, PCCLoss
from .gradient import SobelGradientL1Loss, sobel_gradients
