"""Loading published weights whose parameter names differ from ours: read a file, rename its keys, load.

A renaming is a list of ``(pattern, replacement)`` rules (``re`` syntax; the replacement may be a function of
the match). Each key is renamed by the first rule whose pattern matches it from its start; a rule whose
replacement is None drops the key (a classifier head we have no use for), and a key no rule matches is an
error, so a file of another architecture is never loaded half-way.

:func:`load_pretrained` is the one loader the bundles use: it takes a checkpoint with the network's own
parameter names (the bundles' ``CheckpointSaver`` files) or a file as an original method published it, renamed
by the rules each network module registers for its class with :func:`register_published_format`.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

__all__ = ["read_state_dict", "rename_keys", "load_renamed", "load_pretrained", "register_published_format",
           "PUBLISHED_FORMATS"]

logger = logging.getLogger(__name__)

Replacement = Union[str, Callable[["re.Match"], str], None]
Rule = Tuple[str, Replacement]

#: network class -> the published checkpoint formats it loads: ``(description, renaming rules)`` each.
PUBLISHED_FORMATS: Dict[type, List[Tuple[str, List[Rule]]]] = {}

#: keys under which a checkpoint file may hold its state dict, tried in this order.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "network")


def read_state_dict(path: Union[str, os.PathLike]) -> dict:
    """The state dict stored in ``path``: bare, or under one of :data:`STATE_DICT_KEYS`.

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


def rename_keys(state_dict: Mapping[str, torch.Tensor], rules: Sequence[Rule], source: str = "state dict") -> dict:
    """``state_dict`` with every key renamed by the first matching rule (see the module docstring).

    Raises:
        KeyError: naming ``source`` and the keys no rule matches.
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
                renamed[new + key[match.end():]] = value
            break
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(f"{source}: {len(unknown)} keys of an unexpected architecture, e.g. {unknown[:5]}.")
    return renamed


def load_renamed(
    module: nn.Module, path: Union[str, os.PathLike], rules: Sequence[Rule], prefix: Optional[str] = None
) -> nn.Module:
    """Load the weights file ``path`` into ``module`` after renaming its keys with ``rules``; all must fit.

    Args:
        module: the network (or part of it) receiving the weights.
        path: weights file (see :func:`read_state_dict`).
        rules: the renaming (see the module docstring).
        prefix: if given, only keys starting with it are read, without it (e.g. ``"encoder."``).

    Raises:
        KeyError / ValueError: naming ``path``, for keys no rule knows, for parameters of ``module`` the file
            lacks or for shapes that differ (a different model size).
    """
    state = read_state_dict(path)
    if prefix is not None:
        state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    return _load_fitting(module, rename_keys(state, rules, source=str(path)), path)


def _fit_problems(module: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """Why ``state`` does not load into ``module`` (missing / unexpected keys, other shapes); "" if it does."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        return (f"weights do not fit this network: missing {missing[:5]}, unexpected {unexpected[:5]}"
                f" ({len(missing)} and {len(unexpected)} in all)")
    wrong = [f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}" for key, value in expected.items()
             if state[key].shape != value.shape]
    if wrong:
        return f"weights of another model size: {wrong[:3]} ({len(wrong)} in all)"
    return ""


def _load_fitting(module: nn.Module, state: Mapping[str, torch.Tensor], path) -> nn.Module:
    problems = _fit_problems(module, state)
    if problems:
        raise (ValueError if problems.startswith("weights of another") else KeyError)(f"{path}: {problems}.")
    module.load_state_dict(state)
    return module


def register_published_format(network_type: type, description: str, rules: Sequence[Rule]) -> None:
    """Let :func:`load_pretrained` read files that name ``network_type``'s parameters as ``rules`` say.

    Args:
        network_type: the class (subclasses inherit its formats).
        description: what publishes files in this format, for messages (e.g. "LMC's smp Unet checkpoints").
        rules: renaming from the published names to ours (see the module docstring).
    """
    PUBLISHED_FORMATS.setdefault(network_type, []).append((description, list(rules)))


def load_pretrained(module: nn.Module, path: Optional[Union[str, os.PathLike]]) -> nn.Module:
    """``module`` with the weights of ``path``: a checkpoint with its own parameter names, or a file in one of
    the published formats registered for its class (:data:`PUBLISHED_FORMATS`); None leaves it as it is.

    Raises:
        FileNotFoundError: naming the file.
        KeyError / ValueError: naming the file and, for each format tried, why it does not fit.
    """
    if path is None:
        return module
    state = read_state_dict(path)
    problems = _fit_problems(module, state)
    if not problems:
        module.load_state_dict(state)
        return module
    reasons = [f"as this network's own checkpoint: {problems}"]
    formats = [fmt for cls in type(module).__mro__ for fmt in PUBLISHED_FORMATS.get(cls, [])]
    for description, rules in formats:
        try:
            renamed = rename_keys(state, rules, source=description)
        except KeyError as error:
            reasons.append(f"as {description}: {error.args[0]}")
            continue
        format_problems = _fit_problems(module, renamed)
        if not format_problems:
            module.load_state_dict(renamed)
            logger.info("%s: loaded as %s.", path, description)
            return module
        reasons.append(f"as {description}: {format_problems}")
    error_type = ValueError if all("another model size" in reason for reason in reasons) else KeyError
    raise error_type(f"{path}: does not load into {type(module).__name__}; tried " + "; ".join(reasons) + ".")
