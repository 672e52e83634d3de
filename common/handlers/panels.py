"""Pictures of an evaluation: input / ground truth / prediction panels, and the distribution of per-image metrics.

- :func:`render_panel` draws one image as an 8-bit RGB panel: ``"outlines"`` (instances or masks): input, truth
  outlines in green, prediction outlines in magenta, side by side; ``"channels"`` (fluorescence): one row per
  channel, input, truth and prediction each scaled to its own 0.5-99.5 percentiles (NaN, an absent target, black).
- :class:`PanelWriter` writes the panels of the first images of an evaluator run as PNG files.
- :class:`TensorBoardPanel` logs the panel of one fixed validation image at each evaluation of a training run.
- :class:`MetricDistributionPlot` plots the per-image metrics of a :class:`~common.handlers.MetricsReport` CSV,
  one box per group of its rows, as a PNG beside the report.
- :class:`LazySummaryWriter` is a TensorBoard ``SummaryWriter`` created at its first use, so that a rank whose log
  handlers are left out (``multi_gpu_train.json``) writes no event file.

Files are written beside and renamed (:mod:`common.io.atomic`); an earlier run's are replaced only with
``overwrite``. matplotlib is used through its object API on the Agg canvas (no pyplot, no display).
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from ..io.atomic import atomic_path
from .distributed import all_gather, rank_and_world, shard_index
from .report import MetricsReport, engine_items, natural_key, source_name

__all__ = [
    "LazySummaryWriter",
    "MetricDistributionPlot",
    "PanelWriter",
    "TensorBoardPanel",
    "display_grey",
    "outline_panel",
    "channel_panel",
    "render_panel",
    "save_png",
]

GREEN, MAGENTA = (0, 255, 0), (255, 0, 255)
GAP = 4  # white pixels between the tiles of a panel


def _array(value: Any) -> np.ndarray:
    """A tensor, MetaTensor or array as a float32 numpy array on the CPU."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def _plane(value: Any) -> np.ndarray:
    """(H, W), (1, H, W) or (C, H, W) -> (H, W): the channels' mean (a colour or multi-channel input)."""
    array = _array(value)
    if array.ndim == 3:
        array = array.mean(0)
    if array.ndim != 2:
        raise ValueError(f"expected an (H, W) or (C, H, W) image, got shape {array.shape}.")
    return array


def display_grey(image: Any) -> np.ndarray:
    """(H, W) -> (H, W) uint8 scaled to the image's 0.5 and 99.5 percentiles; NaN pixels black."""
    image = _array(image)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, np.uint8)
    low, high = np.percentile(finite, (0.5, 99.5))
    scaled = np.clip((np.nan_to_num(image, nan=low) - low) / max(high - low, 1e-6), 0, 1)
    return (scaled * 255).astype(np.uint8)


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


def _outlined(grey: np.ndarray, labels: Any, colour: tuple[int, int, int]) -> np.ndarray:
    """(H, W) uint8 with the inner boundaries of the (H, W) or (1, H, W) labels (instances or a mask) drawn."""
    from skimage.segmentation import find_boundaries

    rgb = _rgb(grey)
    rgb[find_boundaries(np.rint(_plane(labels)).astype(np.int64), mode="inner")] = colour
    return rgb


def _row(tiles: Sequence[np.ndarray]) -> np.ndarray:
    """(H, W, 3) tiles side by side with white gaps."""
    gap = np.full((tiles[0].shape[0], GAP, 3), 255, np.uint8)
    parts = [part for tile in tiles for part in (gap, tile)][1:]
    return np.concatenate(parts, axis=1)


def _common_crop(*arrays: np.ndarray) -> list[np.ndarray]:
    """Crop (..., H, W) arrays to their smallest H and W (an input padded for the network, a prediction cropped
    back)."""
    height = min(array.shape[-2] for array in arrays)
    width = min(array.shape[-1] for array in arrays)
    return [array[..., :height, :width] for array in arrays]


def outline_panel(image: Any, truth: Any, pred: Any) -> np.ndarray:
    """(image | truth outlines in green | prediction outlines in magenta) as (H, 3 W + 2 gaps, 3) uint8.

    ``image``: (H, W) or (C, H, W) (channels averaged); ``truth``, ``pred``: (H, W) or (1, H, W) labels or masks.
    """
    plane, truth_, pred_ = _common_crop(_plane(image), _plane(truth), _plane(pred))
    grey = display_grey(plane)
    return _row([_rgb(grey), _outlined(grey, truth_, GREEN), _outlined(grey, pred_, MAGENTA)])


def channel_panel(image: Any, truth: Any, pred: Any) -> np.ndarray:
    """One row per channel: (image | truth channel | predicted channel), as (C H + (C-1) gaps, 3 W + 2 gaps, 3).

    ``image``: (H, W) or (C', H, W) (channels averaged); ``truth``, ``pred``: (C, H, W), NaN where a target is absent.
    """
    plane, truth_, pred_ = _common_crop(_plane(image), _array(truth), _array(pred))
    truth_ = truth_.reshape(-1, *truth_.shape[-2:])
    pred_ = pred_.reshape(-1, *pred_.shape[-2:])
    if truth_.shape[0] != pred_.shape[0]:
        raise ValueError(f"truth and prediction have {truth_.shape[0]} and {pred_.shape[0]} channels.")
    grey = _rgb(display_grey(plane))
    rows = [_row([grey, _rgb(display_grey(t)), _rgb(display_grey(p))]) for t, p in zip(truth_, pred_)]
    gap = np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([part for row in rows for part in (gap, row)][1:], axis=0)


PANELS = {"outlines": outline_panel, "channels": channel_panel}


def render_panel(image: Any, truth: Any, pred: Any, mode: str = "outlines") -> np.ndarray:
    """:func:`outline_panel` (``mode="outlines"``) or :func:`channel_panel` (``"channels"``) of one image."""
    if mode not in PANELS:
        raise ValueError(f"panel mode {mode!r}: expected one of {sorted(PANELS)}.")
    return PANELS[mode](image, truth, pred)


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 array as a PNG, atomically; returns the path."""
    from PIL import Image

    with atomic_path(path) as partial:
        Image.fromarray(rgb).save(partial, format="PNG")
    return Path(path)


class _PanelSource:
    """Keys and mode shared by the panel handlers; renders one decollated item."""

    def __init__(self, mode: str, image_key: str, label_key: str, pred_key: str) -> None:
        if mode not in PANELS:
            raise ValueError(f"panel mode {mode!r}: expected one of {sorted(PANELS)}.")
        self.mode, self.image_key, self.label_key, self.pred_key = mode, image_key, label_key, pred_key
        self.seen = 0

    def reset(self, engine: Engine | None = None) -> None:
        self.seen = 0

    def render(self, item: Mapping) -> np.ndarray:
        missing = [key for key in (self.image_key, self.label_key, self.pred_key) if key not in item]
        if missing:
            raise KeyError(f"{type(self).__name__}: the engine output has no {missing} (keys: {sorted(item)}).")
        return render_panel(item[self.image_key], item[self.label_key], item[self.pred_key], self.mode)


class PanelWriter(_PanelSource):
    """Evaluator handler writing the panels of the first ``count`` images of a run as
    ``<output_dir>/<name>/<index>_<image file stem>.png`` (see :func:`render_panel`). Under ``torch.distributed``
    with several ranks, each evaluating its interleaved shard, ``index`` is the image's place in the whole dataset:
    each rank renders its images among the first ``count``, rank 0 writes them all when the run completes.

    Args:
        output_dir: folder of the evaluation's outputs.
        name: sub-folder of the panels.
        count: how many images (in the evaluator's order) get a panel.
        mode: ``"outlines"`` (instances or masks) or ``"channels"`` (fluorescence).
        image_key, label_key, pred_key: keys of the input, the ground truth and the prediction in the decollated
            engine output.
        overwrite: replace the panels of an earlier run; without it an existing panel folder is an error when the
            handler is attached.
    """

    def __init__(
        self,
        output_dir: str,
        name: str = "panels",
        count: int = 4,
        mode: str = "outlines",
        image_key: str = "image",
        label_key: str = "label",
        pred_key: str = "pred",
        overwrite: bool = False,
    ) -> None:
        super().__init__(mode, image_key, label_key, pred_key)
        self.folder = Path(output_dir) / name
        self.count, self.overwrite = count, overwrite
        self.written: list[Path] = []
        self.rendered: list[tuple[str, np.ndarray]] = []  # (file name, panel) for rank 0 to write

    def attach(self, engine: Engine) -> None:
        if self.folder.is_dir() and any(self.folder.glob("*.png")) and not self.overwrite:
            raise FileExistsError(
                f"{self.folder}: panels of an earlier evaluation; pass --overwrite True to replace them, "
                f"or choose another --output_dir."
            )
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.write_gathered)

    def reset(self, engine: Engine | None = None) -> None:
        super().reset(engine)
        self.written, self.rendered = [], []

    def collect(self, engine: Engine) -> None:
        single = rank_and_world()[1] == 1
        for item in engine_items(engine):
            index = shard_index(self.seen)
            if index < self.count:
                stem = Path(source_name(item, self.image_key, index)).name.split(".")[0]
                name, panel = f"{index:03d}_{stem}.png", self.render(item)
                if single:
                    self.written.append(save_png(panel, self.folder / name))
                else:
                    self.rendered.append((name, panel))
            self.seen += 1

    def write_gathered(self, engine: Engine | None = None) -> None:
        """With several ``torch.distributed`` ranks (a collective call): rank 0 writes every rank's panels."""
        if rank_and_world()[1] == 1:
            return
        panels = sorted((panel for part in all_gather(self.rendered) for panel in part), key=lambda pair: pair[0])
        self.rendered = []
        if rank_and_world()[0] == 0:
            self.written += [save_png(panel, self.folder / name) for name, panel in panels]


class TensorBoardPanel(_PanelSource):
    """Validator handler logging the panel of the ``index``-th validation image (in the evaluator's order, fixed
    when the validation loader does not shuffle) to TensorBoard at each evaluation, at the trainer's epoch.

    Args:
        summary_writer: a ``SummaryWriter`` (e.g. :class:`LazySummaryWriter`), shared with the other TensorBoard
            handlers of the run.
        index: position of the image in the evaluator's order.
        mode, image_key, label_key, pred_key: as :class:`PanelWriter`.
        tag: TensorBoard image tag.
    """

    def __init__(
        self,
        summary_writer: Any,
        index: int = 0,
        mode: str = "outlines",
        image_key: str = "image",
        label_key: str = "label",
        pred_key: str = "pred",
        tag: str = "validation_panel",
    ) -> None:
        super().__init__(mode, image_key, label_key, pred_key)
        self.writer, self.index, self.tag = summary_writer, index, tag

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.collect)

    def collect(self, engine: Engine) -> None:
        for item in engine_items(engine):
            if self.seen == self.index:
                self.writer.add_image(self.tag, self.render(item), global_step=engine.state.epoch, dataformats="HWC")
                self.writer.flush()
            self.seen += 1


class LazySummaryWriter:
    """``torch.utils.tensorboard.SummaryWriter(log_dir)`` created when first used (a rank that logs nothing writes
    no event file); every attribute is the writer's."""

    def __init__(self, log_dir: str, **kwargs: Any) -> None:
        self.log_dir, self.kwargs = str(log_dir), kwargs
        self._writer: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.log_dir, **self.kwargs)
        return getattr(self._writer, name)


class MetricDistributionPlot:
    """Evaluator handler plotting, once the run completes, the per-image metrics of ``report``'s CSV: one panel
    per metric, one box (with each row as a dot) per group of rows, written as
    ``<report output_dir>/<report name>_distribution.png`` (by rank 0 alone under ``torch.distributed``).

    Args:
        report: the run's :class:`~common.handlers.MetricsReport` (attached before this handler).
        metrics: CSV columns to plot.
        group_by: row fields whose values (joined) name a group; None: the report's ``group_by``; ``[]``: all rows
            in one group.
        overwrite: replace the plot of an earlier run (else an error when the handler is attached).
    """

    def __init__(
        self,
        report: MetricsReport,
        metrics: Sequence[str],
        group_by: Sequence[str] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.report, self.metrics = report, list(metrics)
        self.group_by = list(report.group_by if group_by is None else group_by)
        self.overwrite = overwrite
        if not self.metrics:
            raise ValueError(f"{type(self).__name__}: no metric to plot.")

    @property
    def path(self) -> Path:
        return self.report.output_dir / f"{self.report.name}_distribution.png"

    def attach(self, engine: Engine) -> None:
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(
                f"{self.path}: plot of an earlier evaluation; pass --overwrite True to replace it, "
                f"or choose another --output_dir."
            )
        engine.add_event_handler(Events.COMPLETED, self.write)

    def groups(self, rows: Sequence[Mapping[str, str]]) -> dict[str, dict[str, list[float]]]:
        """``{group label: {metric: finite values}}`` in natural order of the labels; "all images" without
        ``group_by``."""
        missing = [metric for metric in self.metrics if rows and metric not in rows[0]]
        if missing:
            raise KeyError(f"{self.report.paths[0]}: no column {missing} (columns: {list(rows[0])}).")
        grouped: dict[str, dict[str, list[float]]] = {}
        for row in rows:
            if any(not row.get(field) for field in self.group_by):
                continue
            label = ", ".join(row[field] for field in self.group_by) or "all images"
            values = grouped.setdefault(label, {metric: [] for metric in self.metrics})
            for metric in self.metrics:
                value = float(row[metric]) if row.get(metric, "") != "" else math.nan
                if math.isfinite(value):
                    values[metric].append(value)
        return dict(sorted(grouped.items(), key=lambda pair: natural_key(pair[0])))

    def read_rows(self) -> list[dict[str, str]]:
        with open(self.report.paths[0], newline="") as stream:
            return list(csv.DictReader(stream))

    def figure(self, groups: Mapping[str, Mapping[str, Sequence[float]]]) -> Any:
        """A matplotlib ``Figure`` (Agg canvas) of ``groups``: one axis per metric, x tick labels the groups."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        labels = list(groups)
        width = max(4.0, 0.6 * len(labels) + 2)
        figure = Figure(figsize=(width, 3.0 * len(self.metrics)), layout="constrained")
        FigureCanvasAgg(figure)
        jitter = random.Random(0)
        for axis, metric in zip(figure.subplots(len(self.metrics), 1, squeeze=False)[:, 0], self.metrics):
            data = [list(groups[label][metric]) for label in labels]
            positions = list(range(1, len(labels) + 1))
            filled = [(p, d) for p, d in zip(positions, data) if d]
            if filled:
                axis.boxplot([d for _, d in filled], positions=[p for p, _ in filled], widths=0.5, showfliers=False)
            for position, values in zip(positions, data):
                axis.scatter([position + jitter.uniform(-0.15, 0.15) for _ in values], values, s=8, alpha=0.6)
            axis.set_xticks(positions, [f"{label}\n(n={len(d)})" for label, d in zip(labels, data)])
            axis.set_xlim(0.4, len(labels) + 0.6)
            axis.set_ylabel(metric)
            axis.grid(axis="y", alpha=0.3)
        grouping = " and ".join(self.group_by) if self.group_by else "image"
        figure.suptitle(f"{self.report.name}: per-{grouping} distribution")
        return figure

    def write(self, engine: Engine | None = None) -> Path:
        if rank_and_world()[0] != 0:  # rank 0 wrote the report, and plots it
            return self.path
        groups = self.groups(self.read_rows())
        if not groups:
            raise RuntimeError(f"{self.report.paths[0]}: no rows with {self.group_by} to plot.")
        figure = self.figure(groups)
        with atomic_path(self.path) as partial:
            figure.savefig(partial, format="png", dpi=100)
        return self.path
