"""Stop training at the first NaN or Inf loss, naming the files of the batch that produced it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable

from ignite.engine import Engine, Events
from monai.handlers import from_engine

from ..transforms.meta import SOURCE_KEY

__all__ = ["StopOnNonFiniteLoss", "batch_sources"]


def batch_sources(batch: Any, key: str = "image") -> list[str]:
    """Source files of a collated batch: its ``source_file`` list (``common.transforms.SourceCompose`` puts it
    there), else ``batch[key].meta["filename_or_obj"]`` or ``<key>_meta_dict``."""
    if not isinstance(batch, dict):
        return []
    if isinstance(batch.get(SOURCE_KEY), (list, tuple)) and batch[SOURCE_KEY]:
        return [str(source) for source in batch[SOURCE_KEY]]
    meta = getattr(batch.get(key), "meta", None) or batch.get(f"{key}_meta_dict") or {}
    sources = meta.get("filename_or_obj", [])
    return [str(source) for source in ([sources] if isinstance(sources, str) else sources)]


class StopOnNonFiniteLoss:
    """Trainer handler: raise FloatingPointError when an iteration's loss is NaN or Inf.

    Unlike ignite's ``TerminateOnNan``, which ends the run quietly (exit status 0, last weights kept), this stops
    it with an error naming the batch's source files, before any handler saves the broken weights.

    Args:
        output_transform: engine output -> loss (default: the ``loss`` of the first decollated item).
        image_key: batch key whose meta data names the source files.
    """

    def __init__(
        self, output_transform: Callable = from_engine(["loss"], first=True), image_key: str = "image"
    ) -> None:
        self.output_transform, self.image_key = output_transform, image_key

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        loss = self.output_transform(engine.state.output)
        loss = loss[0] if isinstance(loss, Sequence) and not isinstance(loss, str) else loss
        value = float(loss.detach().float().mean()) if hasattr(loss, "detach") else float(loss)
        if not math.isfinite(value):
            files = batch_sources(engine.state.batch, self.image_key) or ["(no file names in the batch)"]
            raise FloatingPointError(
                f"loss is {value} at epoch {engine.state.epoch}, iteration {engine.state.iteration}; the batch came "
                f"from {files}. Training stopped; no weights of this step were saved."
            )
