"""Benchmark of common.flows against cellpose's own dynamics: time and peak memory of each step.

    python -m tests.benchmarks.bench_flows [--sizes 512 2048 8192] [--threads 1] [--fill 0.6]
        [--reference-python /path/to/venv-with-cellpose/bin/python] [--reference-max-size 2048]

Steps: ``labels_to_flows`` (reference: cellpose ``dynamics.masks_to_flows_gpu`` on CPU) and ``flows_to_labels``
(reference: cellpose ``dynamics.resize_and_compute_masks``: following, clustering, flow-error check, holes,
small masks). Inputs are synthetic label images (``tests.support.shapes.random_cells``) with about 2000 cells
per 2048 x 2048 covering a ``--fill`` fraction of the image (60 %: cells of ~1250 pixels), and their cellpose
flows at network scale (5x) with cell-probability logits of +-4.

Every measurement runs in a fresh Python process: wall time and CPU time (user + system) of the step, and
its peak memory as the growth of the process's peak resident set size (``ru_maxrss``) over its resident size
just before the step, which counts torch's allocations (unlike tracemalloc). Ratios are cellpose / ours, for
wall and CPU time (CPU time is the steadier one on a shared machine). Both implementations run with the same
number of torch threads. cellpose is not a dependency of this project: give an interpreter that
has it with ``--reference-python`` (or install it here); cellpose imports torchvision only for augmentations,
and ``import_cellpose_dynamics`` stands a placeholder in for it when it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CELLS_PER_PIXEL = 2000 / 2048**2


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(step: str, implementation: str, data: str, threads: int) -> dict:
    """Run one step once in this process; returns its measurements."""
    import resource

    import numpy as np
    import torch

    torch.set_num_threads(threads)
    labels = np.load(f"{data}/labels.npy")
    flows = np.load(f"{data}/flows5.npy")
    logits = np.load(f"{data}/logits.npy")
    if implementation == "ours":
        from common.flows import CELLPOSE_FLOW_SCALE, flows_to_labels, labels_to_flows

        steps = {
            "flows": lambda lab, flo, log: labels_to_flows(torch.from_numpy(lab)),
            "masks": lambda lab, flo, log: flows_to_labels(
                torch.from_numpy(flo), torch.from_numpy(log), flow_scale=CELLPOSE_FLOW_SCALE, neighbour_heat=True
            ),
        }
    else:
        from tests.support.cellpose_reference import import_cellpose_dynamics

        dynamics = import_cellpose_dynamics()
        cpu = torch.device("cpu")
        steps = {
            "flows": lambda lab, flo, log: dynamics.masks_to_flows_gpu(lab, device=cpu),
            "masks": lambda lab, flo, log: dynamics.resize_and_compute_masks(flo, log, device=cpu),
        }
    # warm up on a corner: code pages and thread pools count neither as time nor as the step's memory
    corner = np.unique(labels[:128, :128], return_inverse=True)[1].reshape(128, 128)  # cellpose wants ids 1..N
    steps[step](corner.astype(labels.dtype), flows[:, :128, :128].copy(), logits[:128, :128].copy())
    run = lambda: steps[step](labels, flows, logits)  # noqa: E731
    rss_before = _rss_bytes()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = run()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    masks = None
    if step == "masks":
        masks = int(np.asarray(result).max())
    return {
        "wall": wall,
        "cpu": (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime),
        "peak_mb": max(after.ru_maxrss * 1024 - rss_before, 0) / 2**20,
        "masks": masks,
    }


def make_data(size: int, directory: Path, fill: float) -> int:
    """Write labels, their cellpose flows (5x) and logits for a size x size image with a ``fill`` fraction of
    cell pixels; returns the cell count."""
    import numpy as np
    import torch

    from common.flows import CELLPOSE_FLOW_SCALE, labels_to_flows
    from tests.support.shapes import random_cells

    tile = min(size, 2048)  # large images: independent 2048 tiles, so generation stays fast and bounded
    labels = np.zeros((size, size), np.int32)
    for index, (y, x) in enumerate((y, x) for y in range(0, size, tile) for x in range(0, size, tile)):
        part = random_cells((tile, tile), round(CELLS_PER_PIXEL * tile * tile), seed=index, fill=fill)
        labels[y : y + tile, x : x + tile] = np.where(part > 0, part + labels.max(), 0)
    flows = CELLPOSE_FLOW_SCALE * labels_to_flows(torch.from_numpy(labels), neighbour_heat=True)[0].numpy()
    np.save(directory / "labels.npy", labels)
    np.save(directory / "flows5.npy", flows.astype(np.float32))
    np.save(directory / "logits.npy", np.where(labels > 0, 4.0, -4.0).astype(np.float32))
    return int(labels.max())


def measure(python: str, step: str, implementation: str, data: Path, threads: int) -> dict:
    command = [python, __file__, "--worker", step, implementation, str(data), "--threads", str(threads)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def reference_python(requested: str | None) -> str | None:
    """An interpreter where cellpose.dynamics imports, or None."""
    check = "from tests.support.cellpose_reference import import_cellpose_dynamics as f; f()"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for python in [requested] if requested else [sys.executable]:
        if subprocess.run([python, "-c", check], capture_output=True, env=env, cwd=REPO).returncode == 0:
            return python
    return None


def _cell(result: dict | None) -> str:
    if result is None:
        return "not run"
    if "error" in result:
        return "failed: " + result["error"][:40]
    return f"{result['wall']:8.2f} s {result['cpu']:8.2f} s {result['peak_mb']:7.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both implementations")
    parser.add_argument("--fill", type=float, default=0.6, help="fraction of pixels in cells (cell size follows)")
    parser.add_argument("--reference-python", help="interpreter with cellpose installed (default: this one)")
    parser.add_argument(
        "--reference-max-size",
        type=int,
        default=2048,
        help="largest image for the cellpose reference (8192 takes hours on 2 CPU cores)",
    )
    parser.add_argument("--worker", nargs=3, metavar=("STEP", "IMPLEMENTATION", "DATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, threads=args.threads)))
        return

    reference = reference_python(args.reference_python)
    print(
        f"threads: {args.threads}; cell pixels: {args.fill:.0%}; reference: "
        + (
            f"cellpose via {reference}"
            if reference
            else "cellpose not importable: reference columns not run (cellpose 4.2.1, 2 CPU cores, 2048^2 with 2000 "
            "cells, as given in the issue: flows ~23 s, masks ~30 s; 16x the pixels cost 35x and 69x)"
        )
    )
    columns = f"{'ours: wall, cpu, peak':>30} | {'cellpose: wall, cpu, peak':>30}"
    header = f"{'size':>6} {'cells':>6} {'step':>6} | {columns} | ratio: wall, cpu"
    print(header)
    print("-" * len(header))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            data = Path(tmp) / str(size)
            data.mkdir()
            cells = make_data(size, data, args.fill)
            for step in ("flows", "masks"):
                ours = measure(sys.executable, step, "ours", data, args.threads)
                theirs = None
                if reference and size <= args.reference_max_size:
                    theirs = measure(reference, step, "cellpose", data, args.threads)
                ratio = ""
                if theirs and "error" not in theirs and "error" not in ours:
                    ratio = f"{theirs['wall'] / ours['wall']:5.1f}x {theirs['cpu'] / ours['cpu']:5.1f}x"
                print(f"{size:>6} {cells:>6} {step:>6} | {_cell(ours):>30} | {_cell(theirs):>30} | {ratio}", flush=True)
                rows.append((size, step, ours, theirs))
    by_step = {(size, step): ours for size, step, ours, _ in rows if "error" not in ours}
    for step in ("flows", "masks"):
        sizes = sorted(size for size, s in by_step if s == step)
        for small, large in zip(sizes, sizes[1:]):
            growth = by_step[(large, step)]["wall"] / by_step[(small, step)]["wall"]
            print(f"{step}: {large}^2 / {small}^2 = {(large / small) ** 2:.0f}x pixels, {growth:.1f}x time")


if __name__ == "__main__":
    main()
