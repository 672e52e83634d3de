"""Experiment tracking helpers for ``monai.bundle run ... --tracking mlflow``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["close_tracking"]


def close_tracking(handlers: Iterable[Any] | None) -> int:
    """End the MLflow runs of the ``MLFlowHandler`` s among ``handlers`` (those ``--tracking mlflow`` adds to an
    evaluator's list, which MONAI does not close), so that a later run of the experiment does not log into them;
    returns how many were closed. For an evaluation config's ``finalize``."""
    closed = 0
    for handler in handlers or ():
        if type(handler).__name__ == "MLFlowHandler" and getattr(handler, "cur_run", None) is not None:
            handler.close()
            closed += 1
    return closed
