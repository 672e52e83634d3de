"""Early stopping that survives a resume: its patience counter and best score travel in the checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ignite.engine import Events
from monai.handlers import EarlyStopHandler

__all__ = ["ResumableEarlyStopHandler"]

logger = logging.getLogger(__name__)


class ResumableEarlyStopHandler(EarlyStopHandler):
    """MONAI's ``EarlyStopHandler`` with ``state_dict`` / ``load_state_dict``, for the ``save_dict`` of
    :class:`common.handlers.ResumableCheckpoint`.

    ignite's ``EarlyStopping`` (made by :meth:`set_trainer`) counts the validations without improvement and keeps
    the best score; saved and restored with the checkpoint, a resumed run stops at the epoch an uninterrupted one
    stops at. A run that early stopping ended stays ended when resumed (no further epoch is trained), unless a
    larger ``patience`` is given. Arguments as for ``EarlyStopHandler``; call :meth:`set_trainer` before the
    checkpoint is attached (it loads the state).
    """

    def _stopping(self):
        if self._handler is None:
            raise RuntimeError(
                "ResumableEarlyStopHandler: call set_trainer() before its state is saved or loaded "
                "(in a bundle's run, before the checkpoint handler is attached)."
            )
        return self._handler

    def state_dict(self) -> dict:
        """``{"counter", "best_score", "threshold_mode"}`` of ignite's ``EarlyStopping``."""
        return dict(self._stopping().state_dict())

    def load_state_dict(self, state: Mapping) -> None:
        stopping = self._stopping()
        stopping.load_state_dict(state)
        if stopping.counter >= self.patience:
            logger.info(
                "early stopping ended this run (%d validations without improvement, patience %d); nothing to resume.",
                stopping.counter,
                self.patience,
            )
            stopping.trainer.add_event_handler(Events.STARTED, lambda engine: engine.terminate())
