"""Network weights from files: one reader (:func:`read_state_dict`) and one loader (:func:`load_pretrained`).

:func:`load_pretrained` takes a checkpoint with the network's own parameter names (the bundles' ``CheckpointSaver``
and ``ModelSaver`` files) or a file as an original method published it, renamed by the rules each network module
registers for its class with :func:`register_published_format`.

A renaming is a list of ``(pattern, replacement)`` rules (``re`` syntax; the replacement may be a function of
the match). Each key is renamed by the first rule whose pattern matches it from its start; a rule whose
replacement is None drops the key (a classifier head we have no use for), and a key no rule matches rules the
format out, so a file of another architecture is never loaded half-way.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Union

import torch
from torch import nn

__all__ = [
    "PUBLISHED_FORMATS",
    "available_checkpoints",
    "load_pretrained",
    "read_state_dict",
    "register_published_format",
]

logger = logging.getLogger(__name__)

Replacement = Union[str, Callable[["re.Match"], str], None]
Rule = tuple[str, Replacement]

#: network class -> the published checkpoint formats it loads: ``(description, renaming rules)`` each.
PUBLISHED_FORMATS: dict[type, list[tuple[str, list[Rule]]]] = {}

#: keys under which a checkpoint file may hold its state dict, tried in this order.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "network")


def read_state_dict(path: str | os.PathLike) -> dict:
    """The state dict stored in ``path`` (loaded to the CPU, tensors only): bare, or under one of
    :data:`STATE_DICT_KEYS` (``{"model": ..., "optimizer": ...}`` as MONAI's ``CheckpointSaver`` writes it).

    Raises:
        FileNotFoundError: naming the file.
        ValueError: naming the file, when it holds no mapping of names to tensors.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: weights file not found.")
    content = torch.load(path, map_location="cpu", weights_only=True)
    for key in STATE_DICT_KEYS:
        if isinstance(content, Mapping) and isinstance(content.get(key), Mapping):
            content = content[key]
            break
    if not isinstance(content, Mapping) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise ValueError(f"{path}: expected a state dict (parameter names to tensors), got {type(content).__name__}.")
    return dict(content)


def _rename_keys(state_dict: Mapping[str, torch.Tensor], rules: Sequence[Rule]) -> dict:
    """``state_dict`` with every key renamed by the first matching rule (see the module docstring).

    Raises:
        KeyError: the keys no rule matches.
    """
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    renamed, unknown = {}, []
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            match = pattern.match(key)
            if match is None:
                continue
            if replacement is not None:
                new = replacement(match) if callable(replacement) else match.expand(replacement)
                renamed[new + key[match.end() :]] = value
            break
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f"{len(unknown)} keys of an unexpected architecture, e.g. {unknown[:5]}")
    return renamed


_OTHER_SIZE = "weights of another model size"


def _fit_problems(module: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """Why ``state`` does not load into ``module`` (missing / unexpected keys, other shapes); "" if it does."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        return (
            f"weights do not fit this network: missing {missing[:5]}, unexpected {unexpected[:5]}"
            f" ({len(missing)} and {len(unexpected)} in all)"
        )
    wrong = [
        f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if state[key].shape != value.shape
    ]
    if wrong:
        return f"{_OTHER_SIZE}: {wrong[:3]} ({len(wrong)} in all)"
    return ""


def register_published_format(network_type: type, description: str, rules: Sequence[Rule]) -> None:
    """Let :func:`load_pretrained` read files that name ``network_type``'s parameters as ``rules`` say.

    Args:
        network_type: the class (subclasses inherit its formats).
        description: what publishes files in this format, for messages (e.g. "LMC's smp Unet checkpoints").
        rules: renaming from the published names to ours (see the module docstring).
    """
    PUBLISHED_FORMATS.setdefault(network_type, []).append((description, list(rules)))


def load_pretrained(module: nn.Module, path: str | os.PathLike | None) -> nn.Module:
    """``module`` with the weights of ``path``: a checkpoint with its own parameter names, or a file in one of
    the published formats registered for its class (:data:`PUBLISHED_FORMATS`); None leaves it as it is.
    A ``DistributedDataParallel`` / ``DataParallel`` wrapper is loaded through; ``module`` itself is returned.

    Raises:
        FileNotFoundError: naming the file.
        KeyError / ValueError (a known naming, other shapes): naming the file and, for each format tried, why it
            does not fit.
    """
    if path is None:
        return module
    target = module.module if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else module
    state = read_state_dict(path)
    formats: list[tuple[str, list[Rule] | None]] = [("this network's own checkpoint", None)]
    formats += [fmt for cls in type(target).__mro__ for fmt in PUBLISHED_FORMATS.get(cls, [])]
    reasons = []
    for description, rules in formats:
        try:
            renamed = state if rules is None else _rename_keys(state, rules)
        except KeyError as error:
            reasons.append(f"as {description}: {error.args[0]}")
            continue
        problems = _fit_problems(target, renamed)
        if not problems:
            target.load_state_dict(renamed)
            logger.info("loaded the weights of %s as %s.", path, description)
            return module
        reasons.append(f"as {description}: {problems}")
    error_type = ValueError if any(_OTHER_SIZE in reason for reason in reasons) else KeyError
    raise error_type(f"{path}: does not load into {type(target).__name__}; tried " + "; ".join(reasons) + ".")


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
