"""Whole-slide inference of a bundle, block by block on a Dask cluster, resumable, written chunk by chunk.

:class:`SlideInference` is what a bundle's ``configs/large_image.json`` builds, around a
:class:`common.slides.predict.BlockPredictor` made of the objects of its ``inference.json``::

    python -m monai.bundle run inferring_large \\
        --config_file "['configs/inference.json','configs/large_image.json']" \\
        --input slide.ome.zarr --output labels.ome.zarr [--n_workers 4 | --scheduler_address tcp://host:8786]

A run: open the slide lazily (OME-Zarr or TIFF, ``level`` chooses the resolution); compute the whole-image
intensity statistics the bundle's normalisation needs (one pass over the slide, so every block is normalised as
the whole image is in memory); predict the blocks (:class:`common.slides.predict.BlockPredictor`) on the workers;
write each block's core into ``<output>.partial`` as it arrives and record the block as done; at the end build the
pyramid, write the per-cell table (instance bundles) and rename ``<output>.partial`` to ``<output>``. A killed run
resumes with the same command: recorded blocks are skipped, the others (also any half-written one) redone. A worker
that dies has its blocks redone by ``dask.distributed``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from common.io.atomic import atomic_path
from common.io.slides import OmeZarrWriter, Slide, open_slide, tiff_from_zarr, write_cell_table

from .blocks import Block, block_grid
from .normalise import with_image_statistics
from .predict import BlockOutput, BlockPredictor
from .stitch import label_dtype

__all__ = ["SlideInference", "BlockLedger"]

logger = logging.getLogger(__name__)

#: Dask configuration of the local cluster's workers, so that a worker's memory follows the block, not the number
#: of blocks it has done, and its network runs at full speed on CPU: no statistical profiler (its history of call
#: stacks grows by megabytes a block for the first thousand seconds), and glibc's allocator with fixed thresholds:
#: arrays of 16 MiB and more are memory-mapped and returned when freed (with its adaptive threshold they stay in the
#: heap and fragment it, and a worker's peak creeps up block after block), smaller ones are reused from the heap
#: (Dask's default ``MALLOC_TRIM_THRESHOLD_`` of 64 KiB maps them too, and torch on CPU takes ~40 % longer). Each
#: worker imports this module (torch, MONAI) as it starts, all at once; else the first to receive the predictor
#: imports them as it unpickles it, and only then passes it on to the next (~5 s a worker, in turn).
WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.preload": [__name__],
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 16 * 2**20,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 64 * 2**20,
}


class BlockLedger:
    """The blocks of a run already written, one small JSON file each (holding the block's cell rows), written
    atomically after the block's chunks, so a block is either recorded whole or redone."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, block: Block) -> Path:
        return self.folder / f"{block.name}.json"

    def done(self, block: Block) -> bool:
        return self._path(block).is_file()

    def record(self, block: Block, cells: np.ndarray) -> None:
        """Mark ``block`` done, with its (N,) ``CELL_DTYPE`` rows."""
        rows = [dict(zip(cells.dtype.names or (), row.tolist())) for row in cells]
        with atomic_path(self._path(block)) as partial:
            partial.write_text(json.dumps({"core": [block.y0, block.y1, block.x0, block.x1], "cells": rows}))

    def check_settings(self, settings: dict) -> None:
        """Record ``settings`` of the run, or refuse to resume blocks that were computed with other settings."""
        path = self.folder / "settings.json"
        if path.is_file():
            recorded = json.loads(path.read_text())
            changed = sorted(key for key in set(recorded) | set(settings) if recorded.get(key) != settings.get(key))
            if changed:
                raise ValueError(
                    f"{self.folder.parent}: an interrupted run with other settings ({', '.join(changed)}) is there; "
                    "resume it with its settings, or delete that folder to start again."
                )
            return
        with atomic_path(path) as partial:
            partial.write_text(json.dumps(settings, indent=1))

    def cells(self, blocks: list[Block]) -> Iterator[dict]:
        """The cell rows of ``blocks``, one block's file read at a time (by id within a block), so that the
        table of a slide with millions of cells is written without holding it."""
        for block in blocks:
            yield from json.loads(self._path(block).read_text())["cells"]


class SlideInference:
    """A bundle's inference on slides larger than memory (see the module doc).

    Args:
        predictor: the bundle's inference on one block (:class:`common.slides.predict.BlockPredictor`, built from
            the objects of its ``inference.json``).
        block_size: side of a block's core in pixels; a multiple of ``chunk_size``.
        chunk_size: side of the output's chunks.
        n_workers: Dask workers of the local cluster (None: one per GPU, else 1); 0 runs the blocks in this process
            without Dask.
        scheduler_address: a running Dask scheduler to use instead of a local cluster (SLURM, PBS, Kubernetes).
        labels_name: name of the labels image in the output's ``labels/`` group (instance and semantic bundles).
        channel_names: names of the predicted channels (image bundles).
        ngff_version: "0.4" (zarr v2) or "0.5" (zarr v3) for the output.
    """

    def __init__(
        self,
        predictor: BlockPredictor,
        block_size: int = 2048,
        chunk_size: int = 512,
        n_workers: int | None = None,
        scheduler_address: str | None = None,
        labels_name: str = "labels",
        channel_names: list[str] | None = None,
        ngff_version: str = "0.4",
    ) -> None:
        if chunk_size < 1 or block_size % chunk_size:
            raise ValueError(f"block_size ({block_size}) must be a multiple of chunk_size ({chunk_size}).")
        self.predictor = predictor
        self._preprocessing = self.predictor.preprocessing  # before the statistics of a slide are fixed in it
        self.block_size, self.chunk_size = block_size, chunk_size
        self.n_workers, self.scheduler_address = n_workers, scheduler_address
        self.labels_name, self.channel_names, self.ngff_version = labels_name, channel_names, ngff_version

    def run(
        self, input: str | Path, output: str | Path, level: int = 0, overwrite: bool = False, tiff: str | None = None
    ) -> dict:
        """Predict the slide at ``input`` (resolution ``level``) into the OME-Zarr ``output``, and with ``tiff`` also
        into that tiled pyramidal OME-TIFF (the labels, or the predicted channels), written tile by tile from the
        store; returns a summary (blocks, cells, seconds)."""
        if input is None or output is None:
            raise ValueError("give the slide as --input and the OME-Zarr to write as --output.")
        start = time.monotonic()
        output = Path(output)
        table = output.parent / f"{_stem(output)}_cells.csv" if self.predictor.kind == "instances" else None
        _refuse_to_replace([table, tiff], output, overwrite)
        slide = open_slide(input, level)
        shape = _plane_shape(slide)
        predictor = self.predictor
        predictor.preprocessing = with_image_statistics(self._preprocessing, slide.array)
        writer = self._writer(slide, output, overwrite)
        ledger = BlockLedger(writer.ledger)
        ledger.check_settings(self._settings(slide))
        blocks = block_grid(shape, self.block_size)
        pending = [block for block in blocks if not ledger.done(block)]
        logger.info(
            "%s: %d x %d pixels, %d blocks of %d (halo %d), %d to do",
            slide.path,
            *shape,
            len(blocks),
            self.block_size,
            predictor.halo,
            len(pending),
        )
        for n, result in enumerate(self._predict(slide, pending, shape), 1):
            self._write(writer, slide, result)
            ledger.record(result.block, result.cells)
            elapsed = time.monotonic() - start
            logger.info(
                "block %s done (%d/%d, %.0f s left)",
                result.block.name,
                n,
                len(pending),
                elapsed / n * (len(pending) - n),
            )
        # the table and the TIFF come from the complete store before its rename (which removes the ledger), so a
        # run killed while writing them resumes and writes them again
        cells = 0
        if table is not None:
            counter = itertools.count()  # counts the rows as they stream through (zip stops at the rows' end)
            write_cell_table(table, (row for row, _ in zip(ledger.cells(blocks), counter)), slide.pixel_size)
            cells = next(counter)
        if tiff is not None:
            labels = None if predictor.kind == "image" else self.labels_name
            tiff_from_zarr(writer.complete(), tiff, labels=labels, overwrite=True)  # checked at the start
        final = Path(writer.finish())
        return {
            "output": str(final),
            "blocks": len(blocks),
            "predicted": len(pending),
            "cells": cells,
            "seconds": round(time.monotonic() - start, 1),
        }

    def _settings(self, slide: Slide) -> dict:
        """What the blocks' values depend on, so that a resumed run is the run it continues."""
        weights = hashlib.sha1()
        for name, tensor in self.predictor.network.state_dict().items():
            weights.update(name.encode())
            weights.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        predictor = self.predictor
        return {
            "input": str(Path(slide.path).resolve()),
            "level": slide.level,
            "kind": predictor.kind,
            "block_size": self.block_size,
            "halo": predictor.halo,
            "instance_halo": predictor.instance_halo,
            "item": {key: repr(value) for key, value in sorted(predictor.item.items())},
            "weights": weights.hexdigest(),
            "preprocessing": [type(t).__name__ for t in predictor.preprocessing.transforms],
        }

    def _writer(self, slide: Slide, output: Path, overwrite: bool) -> OmeZarrWriter:
        shape = _plane_shape(slide)
        if self.predictor.kind == "image":
            channels = self.channel_names
            return OmeZarrWriter(
                output,
                shape,
                ("float32", len(channels or [0]), channels),
                None,
                self.chunk_size,
                slide.pixel_size,
                self.ngff_version,
                overwrite,
            )
        dtype = str(label_dtype(shape)) if self.predictor.kind == "instances" else "uint8"
        image = (str(slide.array.dtype), int(slide.array.shape[0]), slide.channel_names)
        return OmeZarrWriter(
            output,
            shape,
            image,
            (self.labels_name, dtype),
            self.chunk_size,
            slide.pixel_size,
            self.ngff_version,
            overwrite,
        )

    def _write(self, writer: OmeZarrWriter, slide: Slide, result: BlockOutput) -> None:
        block = result.block
        if self.predictor.kind == "image":
            writer.write_image(block.y0, block.x0, result.core)
            return
        # read here, not by the cluster: inside a Client, dask's default scheduler would queue this read behind the
        # predictions, and no block would be written or recorded until the last one was predicted
        pixels = slide.array[:, block.y0 : block.y1, block.x0 : block.x1].compute(scheduler="synchronous")
        writer.write_image(block.y0, block.x0, pixels)
        writer.write_labels(block.y0, block.x0, result.core)

    def _predict(self, slide: Slide, blocks: list[Block], shape: tuple[int, int]) -> Iterator[BlockOutput]:
        if not blocks:
            return
        if self.n_workers == 0 and self.scheduler_address is None:
            for block in blocks:
                yield predict_block(self.predictor, slide.path, slide.level, block, shape)
            return
        yield from self._predict_on_cluster(slide, blocks, shape)

    def _predict_on_cluster(self, slide: Slide, blocks: list[Block], shape: tuple[int, int]) -> Iterator[BlockOutput]:
        import dask

        # for the whole run: the local cluster's nannies read it again when they restart a worker that died
        with dask.config.set(WORKER_CONFIG):
            yield from self._predict_with_client(slide, blocks, shape)

    def _predict_with_client(self, slide: Slide, blocks: list[Block], shape: tuple[int, int]) -> Iterator[BlockOutput]:
        from distributed import Client, LocalCluster, as_completed

        cluster = None
        if self.scheduler_address is None:
            n_workers = self.n_workers or max(torch.cuda.device_count(), 1)
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(self.scheduler_address or cluster)
        try:
            workers = len(client.scheduler_info()["workers"]) or 1
            threads = max((os.cpu_count() or 1) // workers, 1) if cluster is not None else None
            predictor = client.scatter(self.predictor, broadcast=True)
            futures = [
                client.submit(predict_block, predictor, slide.path, slide.level, block, shape, threads, pure=False)
                for block in blocks
            ]
            for future in as_completed(futures):
                yield future.result()
                future.release()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def predict_block(
    predictor: BlockPredictor, path: str | Path, level: int, block: Block, shape, threads: int | None = None
) -> BlockOutput:
    """One block, read from the slide by whoever runs it (this process, or a Dask worker using ``threads`` cores)."""
    _use_worker_device(predictor, threads)
    y0, y1, x0, x1 = region = block.grown(predictor.halo, shape)
    pixels = open_slide(path, level).array[:, y0:y1, x0:x1].compute(scheduler="synchronous")
    return predictor(pixels, block, region, shape, str(path))


def _use_worker_device(predictor: BlockPredictor, threads: int | None) -> None:
    """On a Dask worker: its own GPU (worker i of n on GPU i mod count) and its ``threads`` CPU cores, once."""
    if getattr(predictor, "_placed", False):
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    predictor._placed = True  # type: ignore[attr-defined]
    if threads:
        torch.set_num_threads(threads)
    if torch.cuda.is_available():
        index = int(worker.name) if str(worker.name).isdigit() else 0
        predictor.to(f"cuda:{index % torch.cuda.device_count()}")


def _refuse_to_replace(files: list, output: Path, overwrite: bool) -> None:
    """Refuse to start a run that would replace ``files`` written beside the ``output`` store (its cell table, its
    TIFF) without ``overwrite``, unless the run resumes (``<output>.partial`` is there): then they are its own."""
    if overwrite or output.with_name(output.name + ".partial").exists():
        return
    there = [str(path) for path in files if path is not None and Path(path).exists()]
    if there:
        raise FileExistsError(f"{', '.join(there)}: exists; pass overwrite=True (--overwrite True) to replace it.")


def _plane_shape(slide: Slide) -> tuple[int, int]:
    return int(slide.array.shape[-2]), int(slide.array.shape[-1])


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
