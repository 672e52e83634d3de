"""Test-only ignite handlers that record what a bundle run did, for tests to check (added by an override file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events

from common.transforms import source_file
from common.transforms.meta import SOURCE_KEY

__all__ = ["OutputRecorder", "ShardRecorder", "SourceRecorder"]


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def batch_sources(batch) -> list[str]:
    """``source_file`` of every sample of a batch, collated (a dict of lists) or decollated (a list of dicts)."""
    if isinstance(batch, dict):
        return [str(source) for source in batch[SOURCE_KEY]]
    return [str(item[SOURCE_KEY]) for item in batch]


class ShardRecorder:
    """Record, on each rank of a training run, what it trained on and the weights it ended with.

    Writes ``<output_dir>/rank<r>.json``: ``dataset`` (the source file of each item of the training dataset),
    ``epochs`` (per epoch: ``shard``, the dataset indices the rank's sampler gave; ``sources``, the source file of
    every sample of every batch it trained on; ``iterations`` and ``loader_length``; ``drop_last``) and
    ``<output_dir>/rank<r>.pt``, the state dict of its network (unwrapped from DDP) when training completed.
    """

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.epochs: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.start_epoch)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def start_epoch(self, engine: Engine) -> None:
        loader = engine.data_loader
        self.epochs.append(
            {
                "shard": [int(index) for index in loader.sampler],
                "sources": [],
                "iterations": 0,
                "loader_length": len(loader),
                "drop_last": bool(loader.drop_last),
            }
        )

    def collect(self, engine: Engine) -> None:
        self.epochs[-1]["sources"] += batch_sources(engine.state.batch)
        self.epochs[-1]["iterations"] += 1

    def write(self, engine: Engine) -> None:
        dataset = engine.data_loader.dataset
        keys = getattr(dataset.transform, "source_keys", ("image",))  # those common.transforms.SourceCompose names
        self.output_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "dataset": [source_file(item, keys) or f"item {index}" for index, item in enumerate(dataset.data)],
            "epochs": self.epochs,
        }
        (self.output_dir / f"rank{_rank()}.json").write_text(json.dumps(record))
        network = getattr(engine.network, "module", engine.network)
        torch.save(
            {key: value.cpu() for key, value in network.state_dict().items()}, self.output_dir / f"rank{_rank()}.pt"
        )


class OutputRecorder:
    """Save each image's prediction and label of an evaluator run as ``<output_dir>/<n>.npz`` (arrays ``pred`` and
    ``label`` as the evaluator's handlers get them), numbered in the order the evaluator saw them.

    Args:
        output_dir: folder for the files (created if absent).
        pred_key, label_key: keys of the prediction and the ground truth in the decollated engine output.
    """

    def __init__(self, output_dir: str, pred_key: str = "pred", label_key: str = "label") -> None:
        self.output_dir = Path(output_dir)
        self.pred_key, self.label_key = pred_key, label_key
        self.count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)

    def collect(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for item in engine.state.output:
            np.savez(
                self.output_dir / f"{self.count:05d}.npz",
                pred=_numpy(item[self.pred_key]),
                label=_numpy(item[self.label_key]),
            )
            self.count += 1


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


class SourceRecorder:
    """Record, on each rank, the source file of every sample an evaluator run processed, in order, as
    ``<output_dir>/rank<r>.json`` (a list) when the epoch completes."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.sources: list[str] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write)

    def collect(self, engine: Engine) -> None:
        self.sources += batch_sources(engine.state.batch)

    def write(self, engine: Engine) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / f"rank{_rank()}.json").write_text(json.dumps(self.sources))
