"""Ensembles of networks with one output tensor: the mean of their outputs, and building one from checkpoints."""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import torch
from torch import nn

from .weights import load_pretrained

__all__ = ["AverageEnsemble", "ensemble_from_checkpoints"]


class AverageEnsemble(nn.Module):
    """Mean of the outputs of ``networks``, which take the same input and give outputs of one shape.

    Averaging raw outputs (logits, flows) is what MEDIAR does with its two models; since the mean is linear,
    test-time augmentation around the ensemble equals the mean of each model's test-time augmentation.
    """

    def __init__(self, networks: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(networks) == 0:
            raise ValueError("networks: expected at least one network.")
        self.networks = nn.ModuleList(networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(0)
        for index, network in enumerate(self.networks):
            out = network(x)
            total = out if index == 0 else total + out
        return total / len(self.networks)


def ensemble_from_checkpoints(
    network: nn.Module,
    checkpoints: str | os.PathLike | Sequence[str | os.PathLike],
    device=None,
) -> nn.Module:
    """``network`` with the weights of one checkpoint, or an :class:`AverageEnsemble` of copies of it, one per
    checkpoint, each loaded by :func:`common.networks.load_pretrained` (the bundles' own or MEDIAR's released files).

    Args:
        network: the architecture (left unchanged: each checkpoint loads into a copy).
        checkpoints: one file or several.
        device: where the result goes.

    Raises:
        FileNotFoundError / KeyError / ValueError: naming the checkpoint that is missing or does not fit.
    """
    paths = [checkpoints] if isinstance(checkpoints, (str, os.PathLike)) else list(checkpoints)
    if not paths:
        raise ValueError("checkpoints: expected at least one checkpoint file.")
    members = [load_pretrained(copy.deepcopy(network), path) for path in paths]
    model = members[0] if len(members) == 1 else AverageEnsemble(members)
    return model.to(device) if device is not None else model
