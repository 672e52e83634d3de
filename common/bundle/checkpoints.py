"""Checkpoints of a training run: the one to resume from, the weights kept at its end."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

__all__ = ["check_choice", "latest_checkpoint", "save_weights"]

logger = logging.getLogger(__name__)


def latest_checkpoint(ckpt_dir: str, pattern: str = "checkpoint*.pt") -> str:
    """Path of the most recently written file matching ``pattern`` in ``ckpt_dir``.

    Raises:
        FileNotFoundError: naming the folder and pattern, when there is nothing to resume from.
    """
    candidates = sorted(Path(ckpt_dir).glob(pattern), key=lambda path: path.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(
            f"{ckpt_dir}: no checkpoint matching {pattern!r} to resume from; run without --resume first."
        )
    return str(candidates[-1])


def save_weights(network: nn.Module, path: str) -> str:
    """Write the state dict of ``network`` (of its module when wrapped in DistributedDataParallel) to ``path``.

    Called after training to keep the last epoch's weights in the file that evaluation and inference load
    (``models/model.pt``); the folder is created if absent. Returns ``path``.
    """
    target = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(target.state_dict(), path)
    logger.info("saved the weights of the last epoch to %s", path)
    return path


def check_choice(key: str, value: str, choices: Sequence[str]) -> str:
    """``value`` when it is one of ``choices``, else a ValueError naming the config ``key``.

    For choices that act only at the end of a run (e.g. which weights to keep), so a typo fails at once.
    """
    if value not in choices:
        raise ValueError(f"{key}: expected one of {list(choices)}, got {value!r}.")
    return value
