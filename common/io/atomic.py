"""Files that are either complete or absent: write beside the target, then rename over it.

A kill at any moment leaves the previous file (or none) and, at worst, a hidden ``.<name>.partial`` beside it;
:func:`remove_partials` deletes those when a run starts again in that folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

import torch

__all__ = ["PARTIAL_SUFFIX", "partial_path", "atomic_path", "remove_partials", "save_atomic"]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

#: suffix of the hidden file a write goes to before it is renamed into place.
PARTIAL_SUFFIX = ".partial"


def partial_path(path: PathLike) -> Path:
    """The hidden file ``path`` is written to before the rename: ``<folder>/.<name>.partial``."""
    path = Path(path)
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it replaces ``path`` in one rename.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def save_atomic(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj, path)`` that never leaves a truncated ``path``; returns ``path``."""
    with atomic_path(path) as partial:
        torch.save(obj, partial)
    return Path(path)


def remove_partials(folder: PathLike) -> int:
    """Delete the ``.<name>.partial`` files a killed run left in ``folder`` (not below it); returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    leftovers = [path for path in folder.glob(f".*{PARTIAL_SUFFIX}") if path.is_file()]
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        logger.info("%s: removed %d incomplete file(s) of an interrupted run.", folder, len(leftovers))
    return len(leftovers)
