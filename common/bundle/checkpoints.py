"""Checkpoints of a training run: the one to resume from."""

from __future__ import annotations

from pathlib import Path

__all__ = ["latest_checkpoint"]


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
