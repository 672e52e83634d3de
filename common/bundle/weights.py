"""Network weights a bundle starts from (fine-tuning) or chooses between (optional checkpoints at inference)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

from torch import nn

from common.networks import load_pretrained

__all__ = ["available_checkpoints", "load_weights"]

logger = logging.getLogger(__name__)


def load_weights(network: nn.Module, path: str) -> nn.Module:
    """Load the weights saved at ``path`` into ``network`` (unwrapped from ``DistributedDataParallel``) with
    :func:`common.networks.load_pretrained`: the bundle's own checkpoints (a state dict, or the checkpoint dict
    MONAI's ``CheckpointSaver`` writes) or a file as an original method published it; return ``network``.

    Raises:
        FileNotFoundError: naming ``path`` when it does not exist.
        KeyError / ValueError: naming ``path`` when its weights do not fit the network.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: checkpoint to start from not found.")
    target = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
    load_pretrained(target, path)
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
