"""Network weights a bundle starts from (fine-tuning) or chooses between (optional checkpoints at inference)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

__all__ = ["available_checkpoints", "load_weights"]

logger = logging.getLogger(__name__)


def load_weights(network: nn.Module, path: str, key: str = "model") -> nn.Module:
    """Load the weights saved at ``path`` (a state dict, or a checkpoint dict holding it under ``key`` as
    MONAI's ``CheckpointSaver`` writes when it saves several objects) into ``network``; return ``network``.

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: checkpoint to start from not found.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if key in state and isinstance(state[key], Mapping):
        state = state[key]
    target = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
    target.load_state_dict(state)
    logger.info("loaded the weights of %s", path)
    return network


def available_checkpoints(checkpoints: Mapping[str, str], uses: Mapping[str, str] | None = None) -> list[str]:
    """Names of ``checkpoints`` (name -> path) whose file exists; a warning for each missing one.

    Args:
        checkpoints: name -> checkpoint path.
        uses: name -> what the checkpoint is for, added to the warning.

    Raises:
        FileNotFoundError: none of the files exists (all paths named).
    """
    found = [name for name, path in checkpoints.items() if Path(path).is_file()]
    if not found:
        raise FileNotFoundError(f"no checkpoint found: none of {', '.join(map(str, checkpoints.values()))} exists.")
    for name, path in checkpoints.items():
        if name not in found:
            purpose = f" ({uses[name]})" if uses and name in uses else ""
            logger.warning("%s not found%s: its channels come from another checkpoint.", path, purpose)
    return found
