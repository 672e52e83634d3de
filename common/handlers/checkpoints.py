"""Training that survives kills: resumable checkpoints, the best model, and per-epoch seeding.

A training run with these handlers can be killed at any moment and resumed with the same command plus
``--resume True``; it then ends with the weights an uninterrupted run gives:

- :class:`ResumableCheckpoint` (on the trainer) writes ``<prefix>_epoch=<n>.pt`` after every epoch, complete or
  not at all (written beside, then renamed), and deletes the previous one only once the new one is in place. It
  holds every object of ``save_dict`` (network, optimiser, scheduler, trainer) and the validator's best metric.
  On resume it loads the newest checkpoint that reads, naming any it skips.
- It also seeds every random generator at the start of each epoch from ``(seed, epoch, rank)`` (torch, NumPy,
  Python and the training dataset's MONAI transforms), so an epoch's augmentation does not depend on whether the
  run was interrupted before it.
- :class:`ModelSaver` writes the model file that evaluation and inference load: the best by the validator's key
  metric (after a resume compared against the restored best, so a worse model never replaces a better one), or
  the last epoch's.

Both refuse to start over files a previous run wrote unless the user says ``resume`` or ``overwrite``.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.data.utils import set_rnd

from ..io.atomic import remove_partials, save_atomic

__all__ = ["ResumableCheckpoint", "ModelSaver", "epoch_seed", "check_finite_state"]

logger = logging.getLogger(__name__)


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed for ``epoch`` of a run seeded with ``seed`` on process ``rank`` (independent streams)."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def check_finite_state(state: Mapping[str, Any], what: str) -> None:
    """Raise FloatingPointError naming ``what`` and the first parameters holding NaN or Inf (nested dicts searched)."""
    bad = []
    for name, value in state.items():
        if isinstance(value, Mapping):
            try:
                check_finite_state(value, f"{what}#{name}")
            except FloatingPointError as error:
                bad.append(str(error))
        elif isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            bad.append(name)
    if bad:
        raise FloatingPointError(f"{what}: non-finite values in {bad[:5]}; not saved.")


def _refuse_existing(paths: Sequence[Path], resume: bool, overwrite: bool) -> None:
    existing = [str(path) for path in paths if path.exists()]
    if existing and not resume and not overwrite:
        raise FileExistsError(
            f"{existing}: written by an earlier run. Pass --resume True to continue it, or --overwrite True to "
            f"start over and replace them (or choose another --bundle_root)."
        )


class _BestMetric:
    """The validator's best key metric and its epoch, as an object with a state dict (ignite's Engine lacks them)."""

    def __init__(self, evaluator: Engine) -> None:
        self.evaluator = evaluator

    def state_dict(self) -> dict:
        state = self.evaluator.state
        best_metric, best_metric_epoch = state.best_metric, state.best_metric_epoch  # type: ignore[attr-defined]  # MONAI's workflows add it to ignite's State
        return {"best_metric": float(best_metric), "best_metric_epoch": int(best_metric_epoch)}

    def load_state_dict(self, state: Mapping) -> None:
        self.evaluator.state.best_metric = state["best_metric"]  # type: ignore[attr-defined]  # MONAI's workflows add it to ignite's State
        self.evaluator.state.best_metric_epoch = state["best_metric_epoch"]  # type: ignore[attr-defined]  # MONAI's workflows add it to ignite's State


class ResumableCheckpoint:
    """Checkpoint the training state after every epoch and resume from the newest complete checkpoint.

    Args:
        save_dir: folder of the checkpoints (created if absent).
        save_dict: name -> object with ``state_dict`` / ``load_state_dict`` (network, optimiser, lr scheduler,
            trainer). Floating-point tensors must be finite to be saved.
        validator: the validation evaluator whose best key metric travels with the checkpoint (optional).
        seed: the run's seed; every epoch starts from :func:`epoch_seed` of it (None: no seeding).
        resume: continue from the newest complete ``<prefix>_epoch=*.pt``.
        overwrite: start over although checkpoints of an earlier run exist (deleted once this run has saved one).
        prefix: file name prefix (one per model where a bundle trains several into one folder).
        n_saved: how many of the newest checkpoints to keep.

    Raises (at :meth:`attach`):
        FileExistsError: checkpoints exist and neither ``resume`` nor ``overwrite`` is set.
        FileNotFoundError: ``resume`` is set but there is no checkpoint; RuntimeError naming every unreadable one.
    """

    def __init__(
        self,
        save_dir: str,
        save_dict: Mapping[str, Any],
        validator: Engine | None = None,
        seed: int | None = 0,
        resume: bool = False,
        overwrite: bool = False,
        prefix: str = "checkpoint",
        n_saved: int = 1,
    ) -> None:
        if n_saved < 1:
            raise ValueError(f"n_saved: expected at least 1, got {n_saved}.")
        self.save_dir, self.prefix, self.n_saved = Path(save_dir), prefix, n_saved
        self.save_dict = dict(save_dict)
        if validator is not None:
            self.save_dict["validator"] = _BestMetric(validator)
        self.seed, self.resume, self.overwrite = seed, resume, overwrite
        self._pattern = re.compile(re.escape(prefix) + r"_epoch=(\d+)\.pt")
        self._earlier: list[Path] = []

    def checkpoints(self) -> list[Path]:
        """This run's checkpoint files, oldest epoch first."""
        found = [
            (int(m.group(1)), path)
            for path in self.save_dir.glob(f"{self.prefix}_epoch=*.pt")
            if (m := self._pattern.fullmatch(path.name))
        ]
        return [path for _, path in sorted(found)]

    def attach(self, trainer: Engine) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        remove_partials(self.save_dir)
        _refuse_existing(self.checkpoints(), self.resume, self.overwrite)
        # an earlier run's checkpoints, replaced on overwrite once this run has saved its first one
        self._earlier = [] if self.resume else self.checkpoints()
        if self.resume:
            self.load(trainer)
        if self.seed is not None:
            trainer.add_event_handler(Events.EPOCH_STARTED, self.seed_epoch)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self.save)

    def load(self, trainer: Engine) -> Path:
        """Load the newest checkpoint that reads into ``save_dict``; returns its path."""
        candidates = self.checkpoints()
        if not candidates:
            raise FileNotFoundError(
                f"{self.save_dir}: no '{self.prefix}_epoch=*.pt' to resume from; run without --resume first."
            )
        skipped = []
        for path in reversed(candidates):
            try:
                checkpoint = torch.load(path, map_location="cpu", weights_only=False)
                missing = [name for name in self.save_dict if name not in checkpoint and name != "validator"]
                if missing:
                    raise KeyError(f"lacks {missing}")
            except Exception as error:  # a truncated, zeroed or foreign file: try the previous one
                skipped.append(f"{path} ({type(error).__name__}: {error})")
                logger.warning(
                    "%s: cannot resume from it (%s: %s); trying an older checkpoint.", path, type(error).__name__, error
                )
                continue
            max_epochs = trainer.state.max_epochs
            for name, obj in self.save_dict.items():
                if name in checkpoint:
                    obj.load_state_dict(checkpoint[name])
            if max_epochs is not None:
                if trainer.state.epoch > max_epochs:
                    raise ValueError(
                        f"{path}: saved after epoch {trainer.state.epoch}, beyond the {max_epochs} "
                        f"epochs asked for; ask for more epochs or start over."
                    )
                trainer.state.max_epochs = max_epochs  # a resumed run may be asked for more epochs
                if trainer.state.epoch == max_epochs:  # ignite would start again from epoch 0
                    logger.info("%s: training already complete (%d epochs); nothing to resume.", path, max_epochs)
                    trainer.add_event_handler(Events.STARTED, lambda engine: engine.terminate())
                    return path
            logger.info("%s: resuming after epoch %d.", path, trainer.state.epoch)
            return path
        raise RuntimeError(f"{self.save_dir}: no checkpoint to resume from can be read: {skipped}.")

    def seed_epoch(self, trainer: Engine) -> None:
        """Seed torch, NumPy, Python and the training transforms for the epoch that starts."""
        assert self.seed is not None, "seed_epoch is attached only with a seed"
        seed = epoch_seed(self.seed, trainer.state.epoch, _rank())
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        data_loader = getattr(trainer, "data_loader", None)
        if data_loader is not None and getattr(data_loader, "dataset", None) is not None:
            set_rnd(data_loader.dataset, seed)

    def save(self, trainer: Engine) -> None:
        """Write ``<prefix>_epoch=<n>.pt`` (rank 0 only), then delete checkpoints beyond the newest ``n_saved``."""
        if _rank() != 0:
            return
        state = {name: obj.state_dict() for name, obj in self.save_dict.items()}
        path = self.save_dir / f"{self.prefix}_epoch={trainer.state.epoch}.pt"
        check_finite_state(state.get("model", {}), str(path))
        save_atomic(state, path)
        for old in self._earlier:
            if old != path:  # the earlier run's file of this epoch was just replaced by this run's
                old.unlink(missing_ok=True)
        self._earlier = []
        for old in self.checkpoints()[: -self.n_saved]:
            old.unlink(missing_ok=True)


class ModelSaver:
    """Write the network's weights to ``save_dir/filename``: the best so far by the validator's key metric, or the
    last epoch's at the end of training.

    Attach to the trainer (after its ``ValidationHandler``): with ``keep="best"`` the file is written at each
    epoch end where the validator's key metric improved (after a resume, against the restored best, so a worse
    model never replaces a better one); with ``keep="last"`` once training completes. The file holds the bare
    state dict (of the module inside DistributedDataParallel), as the model zoo's ``models/model.pt`` and MONAI's
    ``CheckpointSaver`` with one object do, so ``monai.bundle.load`` reads it; written by rank 0 beside and
    renamed; weights with NaN or Inf are refused.

    Args:
        save_dir: folder of the model file.
        network: the network.
        filename: name of the model file.
        keep: ``"best"`` or ``"last"``.
        validator: the validation evaluator (needed for ``keep="best"``).
        resume, overwrite: an existing model file is an error unless one of them is set (``resume``: it is the
            model of the run being resumed; ``overwrite``: the user starts over).
    """

    def __init__(
        self,
        save_dir: str,
        network: torch.nn.Module,
        filename: str = "model.pt",
        keep: str = "best",
        validator: Engine | None = None,
        resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        if keep not in ("best", "last"):
            raise ValueError(f"keep: expected 'best' or 'last', got {keep!r}.")
        if keep == "best" and validator is None:
            raise ValueError("keep='best' needs the validator whose key metric picks the model.")
        self.path = Path(save_dir) / filename
        self.network, self.keep, self.validator = network, keep, validator
        self.resume, self.overwrite = resume, overwrite

    def attach(self, trainer: Engine) -> None:
        _refuse_existing([self.path], self.resume, self.overwrite)
        if self.keep == "best":
            trainer.add_event_handler(Events.EPOCH_COMPLETED, self.save_if_best)
        else:
            trainer.add_event_handler(Events.COMPLETED, self.save)

    def save_if_best(self, trainer: Engine) -> None:
        assert self.validator is not None, "keep='best' needs the validator"
        best_metric_epoch = self.validator.state.best_metric_epoch  # type: ignore[attr-defined]  # MONAI's workflows add it to ignite's State
        if best_metric_epoch == trainer.state.epoch:
            self.save(trainer)

    def save(self, trainer: Engine) -> None:
        if _rank() != 0:
            return
        state = getattr(self.network, "module", self.network).state_dict()
        check_finite_state(state, str(self.path))
        save_atomic(state, self.path)
        logger.info("%s: saved the %s model (epoch %d).", self.path, self.keep, trainer.state.epoch)
