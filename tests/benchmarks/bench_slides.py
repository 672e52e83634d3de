"""Whole-slide benchmarks of ``common.slides``: memory and time as slides grow, Dask worker scaling, seams.

    python -m tests.benchmarks.bench_slides [--sizes 8192 16384 32768] [--workers 1 2] [--out DIR] [--quick]
        [--parts memory scaling seams] [--patch-size 512] [--no-tta] [--niter 200] [--block-size 2048] ...

Three parts, each printing ratios measured in the same run:

1. memory: the MEDIAR bundle (its small test encoder of ``tests/bundles/specs/mediar_cell_segmentation.json``:
   MiT-B0, narrow decoder, untrained, seeded) through its ``inferring_large`` (``common.slides.SlideInference``) on
   synthetic slides (``common.data.synthetic.write_slide``) of each ``--sizes``, with a Dask ``LocalCluster`` of the
   most ``--workers`` CPU workers. Each size runs in a fresh process that polls the kernel's high-water mark of
   resident memory (``VmHWM`` of ``/proc/<pid>/status``, exact, not a sample of RSS) of each Dask worker process
   until the run ends; it also gives its own (the client's: statistics, writing, pyramid, cell table) peak.
   Ratios: peak memory per worker and time per pixel of each size over the smallest size.
2. scaling: the slide of ``--scaling-size`` with each ``--workers`` count, every worker with
   ``--threads-per-worker`` torch threads; ratio: wall time of the fewest workers over each other count. With
   ``--repeats N`` the counts run in turn N times and each round's ratio and their median are printed (a wall time
   varies by several per cent from one run to the next here).
3. seams: a ``--seam-size`` slide with a row and a column of cells on every seam of the ``--seam-block`` grid
   (``write_slide(seam_every=...)``) through the DSB bundle's ``inferring_large`` and its in-memory ``inferring``,
   both with the stand-in network of the tests (``tests.support.slides.threshold_network``: its instances are the
   synthetic nuclei); F1 at IoU 0.5 of the blockwise labels against the in-memory ones (``common.metrics``'s
   one-to-one matching, per connected group of overlapping cells), whether they are identical up to renumbering, and
   the cells crossing seams (``common.slides.seam_crossings`` of the in-memory labels).

MEDIAR's expensive settings are explicit and default to the bundle's own: 512-pixel windows with overlap 0.6 and 4
windows per batch, test-time augmentation over flips (4 passes), 200 flow-following iterations. ``--quick`` takes
128-pixel windows without TTA, 512-pixel blocks and small slides, to check the script in minutes on 2 cores. The
issue's sizes (8192^2 to 32768^2) run in about an hour on 2 cores with ``--patch-size 128 --overlap 0.25 --no-tta``
(the bundle's settings cost ~100 us a pixel on one core: ~30 CPU-hours for 32768^2); what is measured (memory and
time per pixel as the slide grows, workers against one) depends on the blocks, not on these settings.
Slides are written once into ``--out/slides`` and reused by later runs (a 32768^2 slide takes ~5 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MEDIAR = REPO / "bundles" / "mediar_cell_segmentation"
DSB = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"
MEDIAR_SPEC = REPO / "tests" / "bundles" / "specs" / "mediar_cell_segmentation.json"

# ------------------------------------------------------------------------------------------- measured process


def _high_water_mark(pid: int) -> int | None:
    """Peak resident set of process ``pid`` in bytes (``VmHWM``), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


class WorkerMemory:
    """Polls the peak resident memory of this process's Dask worker processes (spawned children) in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._me, self._interval = psutil.Process(), interval
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            for child in self._me.children(recursive=True):
                try:
                    if "spawn_main" not in " ".join(child.cmdline()):  # not a worker (e.g. the resource tracker)
                        continue
                except Exception:  # noqa: BLE001 - the process ended meanwhile
                    continue
                peak = _high_water_mark(child.pid)
                if peak is not None:
                    self.peaks[child.pid] = max(peak, self.peaks.get(child.pid, 0))
            self._stop.wait(self._interval)

    def __enter__(self) -> WorkerMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _limit_threads(threads_per_worker: int) -> None:
    """Make SlideInference give each local Dask worker ``threads_per_worker`` torch threads (it gives each worker
    cpu_count / workers threads, and has no setting for it): its ``os.cpu_count`` answers workers x threads."""
    import common.slides.engine as engine

    n_workers = int(os.environ["BENCH_N_WORKERS"])
    proxy = types.ModuleType("os")
    proxy.__dict__.update(os.__dict__)
    proxy.cpu_count = lambda: n_workers * threads_per_worker  # type: ignore[attr-defined]
    engine.os = proxy  # type: ignore[attr-defined]


def run_mediar(settings: dict) -> dict:
    """One MEDIAR ``inferring_large`` run of ``settings`` in this process; its time, cells and peak memories."""
    import resource

    import torch

    from tests.support.slides import parse

    torch.set_num_threads(1)
    os.environ["BENCH_N_WORKERS"] = str(settings["n_workers"])
    if settings["threads_per_worker"]:
        _limit_threads(settings["threads_per_worker"])
    spec = json.loads(MEDIAR_SPEC.read_text())
    names = ["inference.json", "large_image.json"]
    overrides = {
        **spec["inference_overrides"],
        "device": "cpu",
        "amp": False,
        "tta": settings["tta"],
        "patch_size": [settings["patch_size"]] * 2,
        "sliding_window#overlap": settings["overlap"],
        "sliding_window#sw_batch_size": settings["sw_batch_size"],
        "sliding_window#progress": False,
        "postprocessing#transforms#0#niter": settings["niter"],
        "input": settings["input"],
        "output": settings["output"],
        "block_size": settings["block_size"],
        "chunk_size": min(512, settings["block_size"]),
        "n_workers": settings["n_workers"],
        "overwrite": True,
    }
    if settings["instance_halo"] is not None:
        overrides["instance_halo"] = settings["instance_halo"]
    parser = parse(MEDIAR, names, overrides)
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def").eval()  # untrained: no checkpoint is published for it
    parser["network"] = network
    slide_inference = parser.get_parsed_content("slide_inference")
    settings = {
        **settings,
        "instance_halo": slide_inference.predictor.instance_halo,
        "halo": slide_inference.predictor.halo,
    }
    with WorkerMemory() as workers:
        start = time.perf_counter()
        summary = parser.get_parsed_content("inferring_large")
        wall = time.perf_counter() - start
    return {
        **settings,
        "wall": wall,
        "cells": summary["cells"],
        "blocks": summary["blocks"],
        "worker_peaks_mb": sorted(peak / 2**20 for peak in workers.peaks.values()),
        "client_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(settings: dict) -> dict:
    """:func:`run_mediar` in a fresh Python process."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "tests.benchmarks.bench_slides", "--run", json.dumps(settings)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return {"error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------------ parts


def slide_path(out: Path, size: int, seam_every: int | None = None) -> Path:
    """The synthetic slide of ``size`` in ``out/slides``, written (chunk by chunk) if it is not there yet."""
    from common.data.synthetic import write_slide

    name = f"slide_{size}" + (f"_seams{seam_every}" if seam_every else "") + ".ome.zarr"
    path = out / "slides" / name
    if not path.exists():
        start = time.perf_counter()
        write_slide(path, size, format="ome-zarr-0.4", chunk=512, seam_every=seam_every)
        print(f"  wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def _settings(args, size: int, n_workers: int, out: Path) -> dict:
    output = out / "outputs" / f"mediar_{size}_{n_workers}w.ome.zarr"
    shutil.rmtree(output, ignore_errors=True)
    shutil.rmtree(output.with_name(output.name + ".partial"), ignore_errors=True)
    return {
        "input": str(slide_path(out, size)),
        "output": str(output),
        "size": size,
        "n_workers": n_workers,
        "threads_per_worker": args.threads_per_worker,
        "tta": args.tta,
        "patch_size": args.patch_size,
        "overlap": args.overlap,
        "sw_batch_size": args.sw_batch_size,
        "niter": args.niter,
        "block_size": args.block_size,
        "instance_halo": args.instance_halo,
    }


def _row(result: dict) -> str:
    if "error" in result:
        return f"{result['size']:>7} {result['n_workers']:>3}  failed: {result['error'][:90]}"
    pixels = result["size"] ** 2
    peaks = ", ".join(f"{peak:.0f}" for peak in result["worker_peaks_mb"]) or "none seen"
    return (
        f"{result['size']:>7} {result['n_workers']:>3} {result['blocks']:>6} {result['cells']:>8} "
        f"{result['wall']:>9.1f} {pixels / result['wall'] / 1e3:>9.1f} {peaks:>16} {result['client_peak_mb']:>9.0f}"
    )


HEADER = (
    f"{'size':>7} {'wkr':>3} {'blocks':>6} {'cells':>8} {'wall s':>9} {'kpx/s':>9} {'worker peak MB':>16} "
    f"{'client MB':>9}"
)


def memory_part(args, out: Path) -> dict[int, dict]:
    n_workers = max(args.workers)
    print(f"\n== memory: MEDIAR on {args.sizes}, {n_workers} worker(s) ==")
    print(HEADER, flush=True)
    results = {}
    for size in args.sizes:
        results[size] = result = {
            "size": size,
            "n_workers": n_workers,
            **measure(_settings(args, size, n_workers, out)),
        }
        print(_row(result), flush=True)
    good = {size: r for size, r in results.items() if "error" not in r and r["worker_peaks_mb"]}
    if good:
        first = next(iter(good.values()))
        print(f"halo {first['halo']} (window {args.patch_size} - 1 + instance halo {first['instance_halo']})")
        small = min(good)
        base_peak = max(good[small]["worker_peaks_mb"])
        base_time = good[small]["wall"] / small**2
        for size in sorted(good)[1:]:
            peak = max(good[size]["worker_peaks_mb"]) / base_peak
            per_pixel = good[size]["wall"] / size**2 / base_time
            client = good[size]["client_peak_mb"] / good[small]["client_peak_mb"]
            print(
                f"{size}^2 / {small}^2 = {(size / small) ** 2:.0f}x pixels: peak memory per worker {peak:.3f}x "
                f"(target within 10 %), time per pixel {per_pixel:.2f}x (linear: 1), client peak {client:.2f}x"
            )
    return results


def scaling_part(args, out: Path, memory: dict[int, dict]) -> None:
    size = args.scaling_size
    print(
        f"\n== scaling: MEDIAR on {size}^2 with {args.workers} worker(s), {args.threads_per_worker} thread(s) each, "
        f"{args.repeats} round(s) =="
    )
    print(HEADER, flush=True)
    counts = sorted(args.workers)
    base = counts[0]
    speedups: dict[int, list[float]] = {n_workers: [] for n_workers in counts[1:]}
    for _ in range(args.repeats):
        results = {}
        for n_workers in counts:
            # with rounds, each count runs right after the other: no reuse of the memory part's run
            reuse = memory.get(size) if args.repeats == 1 else None
            if reuse is not None and reuse["n_workers"] == n_workers and "error" not in reuse:
                results[n_workers] = reuse  # the same run, measured in the memory part
            else:
                results[n_workers] = {
                    "size": size,
                    "n_workers": n_workers,
                    **measure(_settings(args, size, n_workers, out)),
                }
            print(_row(results[n_workers]), flush=True)
        for n_workers in counts[1:]:
            if "error" not in results[base] and "error" not in results[n_workers]:
                speedup = results[base]["wall"] / results[n_workers]["wall"]
                speedups[n_workers].append(speedup)
                print(f"{n_workers} workers / {base}: {speedup:.2f}x faster (target >= 1.7x for 2 / 1)")
    for n_workers, values in speedups.items():
        if len(values) > 1:
            each = ", ".join(f"{value:.2f}x" for value in values)
            median = statistics.median(values)
            print(f"{n_workers} workers / {base}: median {median:.2f}x faster over {len(values)} rounds ({each})")
    print(f"machine: {os.cpu_count()} CPU cores, load average (1 min) at the end: {os.getloadavg()[0]:.1f}")


def _f1_sparse(reference, labels) -> dict:
    """F1 at IoU 0.5 of ``labels`` against ``reference`` (both (H, W)), by ``common.metrics.match_from_iou`` on each
    connected group of overlapping cells: the same one-to-one matching as on the whole IoU matrix, which at this
    size (tens of thousands of cells squared) does not fit in memory."""
    import numpy as np
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    from common.metrics.instance import match_from_iou

    ref_ids, ref_index = np.unique(reference, return_inverse=True)
    got_ids, got_index = np.unique(labels, return_inverse=True)
    n_ref, n_got = len(ref_ids), len(got_ids)  # index 0 is the background (both images have some)
    ref_index, got_index = ref_index.ravel(), got_index.ravel()
    ref_area, got_area = np.bincount(ref_index, minlength=n_ref), np.bincount(got_index, minlength=n_got)
    both = (ref_index > 0) & (got_index > 0)
    pairs, overlap = np.unique(ref_index[both].astype(np.int64) * n_got + got_index[both], return_counts=True)
    rows, cols = pairs // n_got - 1, pairs % n_got - 1
    graph = sparse.coo_matrix((np.ones(len(pairs)), (rows, n_ref - 1 + cols)), shape=(n_ref + n_got - 2,) * 2)
    _, component = connected_components(graph, directed=False)
    totals = {"tp": 0, "fp": 0, "fn": 0}
    iou_of_pair = overlap / (ref_area[rows + 1] + got_area[cols + 1] - overlap)
    ref_component, got_component = component[: n_ref - 1], component[n_ref - 1 :]
    pair_component = ref_component[rows]
    order = np.argsort(pair_component, kind="stable")
    starts = np.searchsorted(pair_component[order], np.arange(component.max() + 2))
    members_ref = np.argsort(ref_component, kind="stable")
    members_got = np.argsort(got_component, kind="stable")
    ref_starts = np.searchsorted(ref_component[members_ref], np.arange(component.max() + 2))
    got_starts = np.searchsorted(got_component[members_got], np.arange(component.max() + 2))
    for c in range(component.max() + 1):
        in_ref = members_ref[ref_starts[c] : ref_starts[c + 1]]
        in_got = members_got[got_starts[c] : got_starts[c + 1]]
        iou = np.zeros((len(in_ref), len(in_got)))
        chosen = order[starts[c] : starts[c + 1]]
        iou[np.searchsorted(in_ref, rows[chosen]), np.searchsorted(in_got, cols[chosen])] = iou_of_pair[chosen]
        match = match_from_iou(iou, 0.5)
        for key in totals:
            totals[key] += match[key]
    tp, fp, fn = totals["tp"], totals["fp"], totals["fn"]
    return {**totals, "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0}


def seam_network(core_level: float, level: float = 0.3, gain: float = 40.0):
    """The tests' stand-in DSB network (``tests.support.slides.threshold_network``: nucleus logit ``gain * (mean input
    - level)``) with a boundary channel of its own: ``gain * (core_level - mean input)``, so that the watershed's
    markers are the bright centres of the nuclei and touching nuclei are split between them, not merged into chains
    (on a normalised synthetic slide). A 1x1 convolution of (B, 3, H, W) to (B, 2, H, W)."""
    import torch

    from tests.support.slides import threshold_network

    network = threshold_network(3, 2, gain, level)
    with torch.no_grad():
        network.bias[1] = gain * core_level
    return network


def _renumbered(labels, expected):
    """(N,) bool: the pixels whose ``labels`` id is not the one mapped to their ``expected`` id, the map being each
    expected cell's most frequent blockwise id (the pixels of a cell that is split or shifted)."""
    import numpy as np

    pairs, inverse, counts = np.unique(
        np.stack([expected, labels]).astype(np.int64), axis=1, return_inverse=True, return_counts=True
    )
    order = np.lexsort((-counts, pairs[0]))  # per expected id, its most frequent pair first
    first = np.ones(len(order), bool)
    first[1:] = pairs[0][order][1:] != pairs[0][order][:-1]
    best = np.zeros(len(order), bool)
    best[order[first]] = True
    return ~best[inverse.ravel()]


def seams_part(args, out: Path) -> None:
    import numpy as np

    from common.slides import seam_crossings
    from tests.support.slides import infer_blockwise, infer_in_memory, read_labels, read_output

    size, block = args.seam_size, args.seam_block
    print(f"\n== seams: DSB (stand-in network) on {size}^2 with cells on every seam of the {block}-pixel blocks ==")
    slide = slide_path(out, size, seam_every=block)
    work = out / "outputs" / f"dsb_seams_{size}_{block}"
    shutil.rmtree(work, ignore_errors=True)
    network = seam_network(args.seam_core_level)
    common_overrides = {"device": "cpu", "amp": False, "network": network, "inferer#progress": False}
    start = time.perf_counter()
    expected = read_output(infer_in_memory(DSB, slide, work, common_overrides), "*_label.tiff")
    in_memory = time.perf_counter() - start
    start = time.perf_counter()
    blocks = {"block_size": block, "chunk_size": min(512, block), "n_workers": 0}
    infer_blockwise(DSB, slide, work / "nuclei.ome.zarr", {**common_overrides, **blocks})
    blockwise = time.perf_counter() - start
    labels = read_labels(work / "nuclei.ome.zarr", "nuclei")
    pairs = np.unique(np.stack([labels.ravel(), expected.ravel()]), axis=1)
    identical = bool(
        np.array_equal(labels == 0, expected == 0)
        and len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
    )
    score = _f1_sparse(expected, labels)
    differ = (labels != 0) & (expected != 0)
    differ[differ] = _renumbered(labels[differ], expected[differ])
    cells = len(np.unique(expected)) - 1
    print(f"in memory {in_memory:.0f} s, blockwise {blockwise:.0f} s (one process)")
    print(
        f"cells {cells} (in memory), {len(np.unique(labels)) - 1} (blockwise); crossing seams: "
        f"{seam_crossings(expected, block)}"
    )
    print(
        f"blockwise vs in memory: F1 at IoU 0.5 = {score['f1']:.4f} (tp {score['tp']}, fp {score['fp']}, "
        f"fn {score['fn']}); identical up to renumbering: {'yes' if identical else 'NO'}"
    )
    if not identical:
        near = np.zeros_like(differ)
        for seam in range(block, size, block):
            near[seam - 32 : seam + 32] = near[:, seam - 32 : seam + 32] = True
        print(
            f"pixels whose cell differs: {int(differ.sum())} ({int((differ & near).sum())} within 32 pixels of a seam) "
            f"of {int((expected != 0).sum())} cell pixels"
        )


# -------------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="slide sides of the memory part (8192 16384 32768)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts of scaling (memory uses the most)"
    )
    parser.add_argument("--threads-per-worker", type=int, default=1, help="torch threads of each Dask worker")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_slides"), help="slides and outputs")
    parser.add_argument("--parts", nargs="+", default=["memory", "scaling", "seams"])
    parser.add_argument("--quick", action="store_true", help="small slides, 128-pixel windows, no TTA, 512 blocks")
    parser.add_argument("--patch-size", type=int, help="MEDIAR's window side (bundle: 512)")
    parser.add_argument("--overlap", type=float, default=0.6, help="window overlap (bundle: 0.6)")
    parser.add_argument("--sw-batch-size", type=int, default=4, help="windows per network call (bundle: 4)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, help="flip TTA, 4 passes (bundle: on)")
    parser.add_argument("--niter", type=int, default=200, help="flow-following iterations (bundle: 200)")
    parser.add_argument("--block-size", type=int, help="block core side (SlideInference: 2048)")
    parser.add_argument("--instance-halo", type=int, help="MEDIAR's instance halo (default: its large_image.json's)")
    parser.add_argument("--scaling-size", type=int, help="slide side of the scaling part (8192)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds of the scaling part (each worker count in turn; median ratio)"
    )
    parser.add_argument("--seam-size", type=int, default=4096, help="slide side of the seams part")
    parser.add_argument("--seam-block", type=int, help="block side of the seams part (2048)")
    parser.add_argument(
        "--seam-core-level", type=float, default=0.6, help="normalised intensity of the stand-in's nucleus cores"
    )
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_mediar(json.loads(args.run))))
        return
    quick = args.quick
    defaults = {
        "sizes": [1024, 2048, 4096] if quick else [8192, 16384, 32768],
        "patch_size": 128 if quick else 512,
        "tta": not quick,
        "block_size": 512 if quick else 2048,
        "scaling_size": 2048 if quick else 8192,
        "seam_block": 1024 if quick else 2048,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    out = args.out
    (out / "slides").mkdir(parents=True, exist_ok=True)
    print(
        f"MEDIAR (MiT-B0 test encoder, untrained, CPU): windows {args.patch_size} overlap {args.overlap} batch "
        f"{args.sw_batch_size}, TTA {'flips x4' if args.tta else 'off'}, niter {args.niter}, blocks {args.block_size}; "
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}"
    )
    timings = {}
    memory: dict[int, dict] = {}
    for part in args.parts:
        start = time.perf_counter()
        if part == "memory":
            memory = memory_part(args, out)
        elif part == "scaling":
            scaling_part(args, out, memory)
        elif part == "seams":
            seams_part(args, out)
        else:
            raise SystemExit(f"--parts: unknown part {part!r} (memory, scaling, seams)")
        timings[part] = time.perf_counter() - start
    print("\n" + ", ".join(f"{part} took {seconds:.0f} s" for part, seconds in timings.items()))


if __name__ == "__main__":
    main()
