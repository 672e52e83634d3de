"""Loading published weights whose parameter names differ from ours: read a file, rename its keys, load.

A renaming is a list of ``(pattern, replacement)`` rules (``re`` syntax; the replacement may be a function of
the match). Each key is renamed by the first rule whose pattern matches it from its start; a rule whose
replacement is None drops the key (a classifier head we have no use for), and a key no rule matches is an
error, so a file of another architecture is never loaded half-way.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

__all__ = ["read_state_dict", "rename_keys", "load_renamed"]

Replacement = Union[str, Callable[["re.Match"], str], None]
Rule = Tuple[str, Replacement]


def read_state_dict(path: Union[str, os.PathLike]) -> dict:
    """The state dict stored in ``path``: bare, or under ``"state_dict"``, ``"model"`` or ``"network"``.

    Raises:
        FileNotFoundError: naming the file.
        ValueError: naming the file, when it holds no mapping of names to tensors.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: weights file not found.")
    content = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "network"):
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
    state = rename_keys(state, rules, source=str(path))
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise KeyError(f"{path}: weights do not fit this network: missing {missing[:5]}, unexpected {unexpected[:5]}"
                       f" ({len(missing)} and {len(unexpected)} in all).")
    wrong = [f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}" for key, value in expected.items()
             if state[key].shape != value.shape]
    if wrong:
        raise ValueError(f"{path}: weights of another model size: {wrong[:3]} ({len(wrong)} in all).")
    module.load_state_dict(state)
    return module
