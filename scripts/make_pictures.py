"""The README's pictures of physical pixel size, bioimage.io export, TensorBoard curves and metric distributions.

    python scripts/make_pictures.py [--demo demo_output] [--out docs] [--only pixel_size bioimageio tensorboard ...]

- ``pixel_size_dsb.png``: the experiment of ``tests/test_pixel_size.py`` (``tests.support.pixel_size``): a small
  U-Net trained on synthetic nuclei at 0.5 um (about 10 s), the DSB bundle's ``inference.json`` on one scene imaged
  at 0.5 um and at 0.25 um, without and with ``--match_pixel_size True``; outlines over the image (truth green,
  prediction magenta), F1 at IoU 0.5 against the truth and against the 0.5 um result in the titles. Needs no demo.
- ``bioimageio_dsb.png``: ``python -m common.bundle export`` of the DSB bundle with ``--format bioimageio`` and the
  demo's checkpoint, checked with ``bioimageio test`` (offline), then the package's cover image, its test input and
  its test output channels as the package stores them, with a summary of its ``rdf.yaml``.
- ``tensorboard_dsb.png``: the demo's TensorBoard event file (the newest in ``<demo>/bundle_run/logs``, read with
  TensorBoard's ``EventAccumulator``): ``train_loss`` per iteration, ``val_mean_f1`` per evaluation and the last
  ``validation_panel``.
- ``distribution_dsb.png``: the demo evaluation's own plot of its per-image metrics
  (``<demo>/bundle_run/eval/instance_metrics_test_distribution.png``, written by ``evaluate.json``), copied.

``--demo`` is the folder ``make demo`` writes (``scripts/demo.py --out``; ``make demo`` uses ``demo_output``); all
pictures but the pixel-size one need it. The PNGs are quantised to 256 colours to stay small.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DSB = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"
PICTURES = ("pixel_size", "bioimageio", "tensorboard", "distribution")


def new_figure(width: float, height: float):
    """A matplotlib ``Figure`` on the Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_small_png(figure, path: Path) -> Path:
    """Write ``figure`` as a PNG of at most 256 colours (adaptive palette), beside and renamed; returns the path."""
    from PIL import Image

    from common.io.atomic import atomic_path

    figure.canvas.draw()
    rgb = Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as partial:
        rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(partial, format="PNG", optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} kB)", flush=True)
    return path


def outlined(image: np.ndarray, truth: np.ndarray | None, pred: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: ``image`` in grey (0.5-99.5 percentiles), truth outlines green, prediction outlines magenta."""
    from skimage.segmentation import find_boundaries

    from common.handlers.panels import GREEN, MAGENTA, display_grey

    rgb = np.repeat(display_grey(image)[..., None], 3, axis=-1)
    if truth is not None:
        rgb[find_boundaries(truth, mode="inner")] = GREEN
    rgb[find_boundaries(pred, mode="inner")] = MAGENTA
    return rgb


def pixel_size_picture(out: Path, work: Path) -> Path:
    """``pixel_size_dsb.png`` (see the module docstring)."""
    from tests.support.pixel_size import TRAINING_UM, dsb_infer, nuclei_scene, train_small_network
    from tests.support.reference_metrics import instance_f1

    print("pixel size: training the small network of tests/test_pixel_size.py", flush=True)
    train_small_network(work)
    fine, truth = nuclei_scene(7, 160, 2)  # the test's first scene: 320 x 320 pixels of 0.25 um
    coarse = fine.reshape(160, 2, 160, 2).mean((1, 3)).round().astype(np.uint16)  # 2 x 2 binning: 0.5 um
    at_training = dsb_infer(work, "coarse", coarse, TRAINING_UM, False)
    unmatched = dsb_infer(work, "off", fine, TRAINING_UM / 2, False)
    matched = dsb_infer(work, "on", fine, TRAINING_UM / 2, True)

    def scores(pred: np.ndarray, reference: np.ndarray) -> str:
        """F1 at IoU 0.5 against the truth, and (at 0.25 um) against the 0.5 um result on its grid."""
        text = f"F1 vs truth {instance_f1(pred, reference)['f1@0.50']:.2f}"
        if pred.shape != at_training.shape:  # nearest to the 0.5 um grid, as the test compares
            text += f", vs 0.5 um result {instance_f1(pred[1::2, 1::2], at_training)['f1@0.50']:.2f}"
        return text

    extent = (0, 160 * TRAINING_UM, 160 * TRAINING_UM, 0)  # the same field in micrometres
    panels = [
        (coarse, truth[1::2, 1::2], at_training, "0.5 um (the training pixel size)"),
        (fine, truth, unmatched, "0.25 um, without the option"),
        (fine, truth, matched, "0.25 um, --match_pixel_size True"),
    ]
    figure = new_figure(12, 4.6)
    for axis, (image, reference, pred, title) in zip(figure.subplots(1, 3), panels):
        axis.imshow(outlined(image, reference, pred), extent=extent, interpolation="nearest")
        axis.set_title(f"{title}\n{scores(pred, reference)}", fontsize=10)
        axis.set_xlabel("um")
    figure.suptitle(
        "DSB bundle (small U-Net trained at 0.5 um), one synthetic scene imaged at two pixel sizes: "
        "truth green, prediction magenta",
        fontsize=11,
    )
    return save_small_png(figure, out / "pixel_size_dsb.png")


def demo_checkpoint(demo: Path) -> Path:
    checkpoint = demo / "bundle_run" / "models" / "model.pt"
    if not checkpoint.is_file():
        sys.exit(f"make_pictures: no {checkpoint}; run `make demo` (or scripts/demo.py --out {demo}) first.")
    return checkpoint


def bioimageio_picture(out: Path, work: Path, demo: Path) -> Path:
    """``bioimageio_dsb.png`` (see the module docstring)."""
    import yaml
    from PIL import Image

    package_dir = work / "bioimageio"
    export = [sys.executable, "-m", "common.bundle", "export", str(DSB), "--format", "bioimageio"]
    export += ["--out", str(package_dir), "--model", str(demo_checkpoint(demo))]
    print("bioimage.io: $ " + " ".join(export), flush=True)
    subprocess.run(export, check=True, cwd=REPO)
    (package,) = package_dir.glob("*.bioimageio.zip")
    env = dict(os.environ, BIOIMAGEIO_PERFORM_IO_CHECKS="false", BIOIMAGEIO_CACHE_PATH=str(work / "bioimageio_cache"))
    check = [sys.executable, "-m", "bioimageio.core", "test", str(package), "--weight-format", "torchscript"]
    print("bioimage.io: $ " + " ".join(check[2:]), flush=True)
    tested = subprocess.run(check, env=env, capture_output=True, text=True)
    verdict = "passed" if tested.returncode == 0 else f"FAILED (exit {tested.returncode})"
    if tested.returncode:
        print(tested.stdout[-3000:] + tested.stderr[-3000:], flush=True)

    archive = zipfile.ZipFile(package)
    rdf = yaml.safe_load(archive.read("rdf.yaml"))
    (image,), (pred,) = rdf["inputs"], rdf["outputs"]
    test_input = np.load(io.BytesIO(archive.read(image["test_tensor"]["source"])))  # (1, C, H, W)
    test_output = np.load(io.BytesIO(archive.read(pred["test_tensor"]["source"])))
    cover_name = next(entry["source"] if isinstance(entry, dict) else entry for entry in rdf["covers"])
    cover = np.asarray(Image.open(io.BytesIO(archive.read(cover_name))).convert("RGB"))
    output_names = pred["axes"][1].get("channel_names", [f"channel {k}" for k in range(test_output.shape[1])])

    def ops(tensor: dict) -> str:
        return ", ".join(step["id"] for step in tensor.get("preprocessing", tensor.get("postprocessing", []))) or "-"

    tiles = [(cover, f"cover ({cover_name})", None)]
    tiles.append((test_input[0].mean(0), f"test input {image['id']} {list(test_input.shape)}", "gray"))
    tiles += [(channel, f"test output: {name}", "magma") for name, channel in zip(output_names, test_output[0])]
    figure = new_figure(3.2 * len(tiles), 4.4)
    for axis, (array, title, colours) in zip(figure.subplots(1, len(tiles)), tiles):
        axis.imshow(array, cmap=colours, interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.set_axis_off()
    figure.suptitle(
        f"{package.name}: {rdf['name']} {rdf['version']}, format {rdf['format_version']}, "
        f"weights {', '.join(rdf['weights'])}; bioimageio test: {verdict}\n"
        f"preprocessing: {ops(image)}; postprocessing: {ops(pred)}; "
        f"files: {', '.join(sorted(name for name in archive.namelist() if '/' not in name))}",
        fontsize=9,
    )
    return save_small_png(figure, out / "bioimageio_dsb.png")


def tensorboard_picture(out: Path, demo: Path) -> Path:
    """``tensorboard_dsb.png`` (see the module docstring)."""
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = demo / "bundle_run" / "logs"
    files = sorted(logs.glob("events.out.tfevents.*"), key=lambda file: file.stat().st_mtime)
    if not files:
        sys.exit(f"make_pictures: no TensorBoard event files in {logs}; run `make demo` first.")
    events = EventAccumulator(str(files[-1]), size_guidance={"scalars": 0, "images": 0})  # the latest run's
    events.Reload()
    loss = events.Scalars("train_loss")
    metric = events.Scalars("val_mean_f1")
    panels = events.Images("validation_panel")
    figure = new_figure(13, 3.8)
    curves, metrics, panel = figure.subplots(1, 3, width_ratios=[1, 1, 1.6])
    steps, values = np.array([e.step for e in loss]), np.array([e.value for e in loss])
    curves.plot(steps, values, lw=0.6, alpha=0.4, label="per iteration")
    window = min(15, len(values))
    curves.plot(steps[window - 1 :], np.convolve(values, np.ones(window) / window, "valid"), label=f"mean of {window}")
    curves.set(xlabel="iteration", ylabel="train_loss", title="train_loss")
    curves.legend(fontsize=8)
    metrics.plot([e.step for e in metric], [e.value for e in metric], "o-")
    metrics.set(xlabel="epoch", ylabel="val_mean_f1", title="val_mean_f1 per evaluation", ylim=(0, 1))
    for axis in (curves, metrics):
        axis.grid(alpha=0.3)
    panel.imshow(np.asarray(Image.open(io.BytesIO(panels[-1].encoded_image_string)).convert("RGB")))
    panel.set_title(f"validation_panel, epoch {panels[-1].step}: image | truth | prediction", fontsize=10)
    panel.set_axis_off()
    figure.suptitle(f"TensorBoard logs of the DSB training of make demo ({files[-1].relative_to(demo)})", fontsize=11)
    return save_small_png(figure, out / "tensorboard_dsb.png")


def distribution_picture(out: Path, demo: Path) -> Path:
    """``distribution_dsb.png`` (see the module docstring)."""
    from common.io.atomic import atomic_path

    plot = demo / "bundle_run" / "eval" / "instance_metrics_test_distribution.png"
    if not plot.is_file():
        sys.exit(f"make_pictures: no {plot}; run `make demo` first.")
    target = out / "distribution_dsb.png"
    with atomic_path(target) as partial:
        shutil.copyfile(plot, partial)
    print(f"wrote {target} ({target.stat().st_size // 1024} kB)", flush=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=REPO / "demo_output", help="folder written by `make demo`")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder of the PNGs (default: docs)")
    parser.add_argument("--only", nargs="+", choices=PICTURES, default=list(PICTURES), help="pictures to draw")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="make_pictures_") as work_dir:
        work = Path(work_dir)
        if "tensorboard" in args.only:
            tensorboard_picture(args.out, args.demo)
        if "bioimageio" in args.only:
            bioimageio_picture(args.out, work, args.demo)
        if "distribution" in args.only:
            distribution_picture(args.out, args.demo)
        if "pixel_size" in args.only:
            (work / "pixel_size").mkdir()
            pixel_size_picture(args.out, work / "pixel_size")


if __name__ == "__main__":
    main()
