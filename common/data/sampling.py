"""What a training run samples: datalists of several datasets together, MEDIAR's amplified sampling (items of
small modality clusters repeated) and cell memory replay (a few items of other data added to every batch)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from common.io import build_datalist

__all__ = ["combined_datalist", "amplified_datalist", "ReplayLoader"]


def combined_datalist(datasets: Sequence[Mapping]) -> list[dict]:
    """Items of several datasets, each given as ``{"layout": ..., "root": ..., "name": ..., <builder options>}``.

    ``layout`` and ``root`` go to :func:`common.io.build_datalist` with the other options (for example
    ``{"layout": "neurips", "root": "/data/cellpose", "image_dir": "train", "label_dir": "train",
    "image_suffix": "_img", "label_suffix": "_masks", "label_ext": ".png"}``). Each item gets ``"dataset"``
    (``name``, by default the layout) and an id prefixed with it, so ids stay unique across datasets.
    """
    items: list[dict] = []
    for index, spec in enumerate(datasets):
        spec = dict(spec)
        missing = [key for key in ("layout", "root") if key not in spec]
        if missing:
            raise KeyError(f"datasets[{index}]: missing {missing}; expected {{'layout': ..., 'root': ..., ...}}.")
        layout, root = spec.pop("layout"), spec.pop("root")
        name = str(spec.pop("name", layout))
        for item in build_datalist(layout, root, **spec):
            items.append({**item, "id": f"{name}/{item.get('id', len(items))}"})
    return items


def amplified_datalist(datalist: Sequence[Mapping], sampling_file: str | os.PathLike | None) -> list[dict]:
    """``datalist`` with each item repeated as ``sampling_file`` says (written by :mod:`common.data.modalities`);
    each item once where ``sampling_file`` is None.

    The file maps item ids to ``{"cluster": k, "repeats": r}``; an item it does not list is an error naming the
    file, so a sampling computed for another dataset is never applied silently.
    """
    if sampling_file is None:
        return [dict(item) for item in datalist]
    path = Path(sampling_file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: sampling file not found; write it with python -m common.data.modalities.")
    plan = json.loads(path.read_text()).get("items", {})
    amplified: list[dict] = []
    for item in datalist:
        key = str(item.get("id", item.get("image")))
        if key not in plan:
            raise KeyError(f"{path}: no entry for item {key!r}; was the file written for this dataset and split?")
        amplified.extend(dict(item) for _ in range(int(plan[key]["repeats"])))
    return amplified


class ReplayLoader:
    """Batches of ``loader`` with a batch of ``replay`` appended to each (MEDIAR's cell memory replay).

    ``replay`` is cycled: it restarts whenever it runs out, so an epoch is as long as ``loader``. Tensors of the
    keys both batches have are concatenated along the batch dimension, lists are joined; keys only the main
    batch has are dropped where the replay batch lacks them, so the trainer sees consistent batches.
    """

    def __init__(self, loader: DataLoader, replay: Iterable) -> None:
        self.loader, self.replay = loader, replay
        self._replay_iter: Iterator | None = None

    def __len__(self) -> int:
        return len(self.loader)

    def _next_replay(self) -> Mapping:
        for _ in range(2):
            try:
                if self._replay_iter is None:
                    self._replay_iter = iter(self.replay)
                return next(self._replay_iter)
            except StopIteration:
                self._replay_iter = None
        raise ValueError("ReplayLoader: the replay data loader yields no batch; is its datalist empty?")

    def __iter__(self) -> Iterator[dict]:
        for batch in self.loader:
            extra = self._next_replay()
            merged: dict[str, object] = {}
            for key, value in batch.items():
                if key not in extra:
                    continue
                if isinstance(value, torch.Tensor):
                    merged[key] = torch.cat([value, extra[key]], dim=0)
                elif isinstance(value, list):
                    merged[key] = value + list(extra[key])
            yield merged
