"""End-to-end demo of the DSB nuclei watershed bundle on synthetic data, through the MONAI bundle CLI.

Writes a small synthetic BBBC039-layout dataset, trains the bundle for a few minutes on CPU, evaluates it on
the test split with the Caicedo mean-average F1, segments the test images with the inference config, and
draws ``panel.png``: image, ground-truth outlines, predicted outlines. Usage::

    python scripts/demo.py --out demo_output [--epochs 100] [--resume]

Everything goes under ``--out``; a folder that this demo did not create is never written into. Run again into
the same folder, the demo starts over: it rewrites its synthetic data and runs the bundle with
``--overwrite True`` (the bundle refuses to replace an earlier run's files without it). ``--resume`` continues
a killed demo instead: training from its last checkpoint (``--resume True``), evaluation redone, inference
skipping the images already segmented.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"
MARKER = ".created-by-demo"
DATA, INPUTS = "bbbc039", "inference_input"  # the demo's synthetic dataset and the copy of its test images


def prepare_output(out: Path, resume: bool) -> bool:
    """Create ``out``; return whether it holds an earlier run of this demo (refusing a folder it did not make).

    Starting over, the earlier run's synthetic data is deleted (it is written again, identically for the same
    arguments); its training, evaluation and inference files are left to the bundle's ``--overwrite True``.
    """
    earlier = out.exists() and any(out.iterdir())
    if earlier and not (out / MARKER).exists():
        sys.exit(f"demo: {out} exists and was not made by this demo; choose another --out.")
    if resume and not earlier:
        sys.exit(f"demo: --resume: {out} holds no earlier demo run to continue; run without --resume.")
    if earlier and not resume:
        print(
            f"demo: {out} holds an earlier demo run; starting over and replacing its results "
            f"(--resume continues an interrupted run instead).",
            flush=True,
        )
        for folder in (DATA, INPUTS):
            shutil.rmtree(out / folder, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()
    return earlier


def newer(path: Path, than: Path) -> bool:
    """Whether ``path`` exists and was last written after ``than``."""
    return path.exists() and than.exists() and path.stat().st_mtime_ns > than.stat().st_mtime_ns


def bundle_cli(run_id: str, config_files: list[str], **overrides) -> None:
    """Run ``python -m monai.bundle run`` from the bundle folder, streaming its output."""
    command = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        run_id,
        "--meta_file",
        "configs/metadata.json",
        "--config_file",
        str([f"configs/{name}" for name in config_files]),
        "--logging_file",
        "configs/logging.conf",
    ]
    for key, value in overrides.items():
        command += [f"--{key}", value if isinstance(value, str) else repr(value)]
    print("\n$ " + " ".join(command), flush=True)
    subprocess.run(command, cwd=BUNDLE, check=True)


def write_panel(image_path: Path, label_path: Path, prediction_path: Path, destination: Path) -> None:
    """(image | ground truth in green | prediction in magenta) side by side as an 8-bit RGB PNG
    (:func:`common.handlers.panels.outline_panel`, as the bundles' evaluation draws its panels)."""
    from common.handlers.panels import outline_panel, save_png
    from common.io import read_image, read_instance_labels

    image = read_image(image_path).astype(np.float32)
    image = image if image.ndim == 2 else np.moveaxis(image[..., :3], -1, 0)
    truth, predicted = read_instance_labels(label_path), read_image(prediction_path).astype(np.int64)
    save_png(outline_panel(image, truth, predicted), destination)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "demo_output", help="output folder")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (3 iterations each)")
    parser.add_argument("--images", type=int, default=24, help="synthetic images (half for training)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted demo in --out")
    args = parser.parse_args()
    out = args.out.resolve()
    earlier = prepare_output(out, args.resume)
    run = out / "bundle_run"

    from common.data.synthetic import write_dataset

    data = out / DATA
    if args.resume and (data / "metadata" / "test.txt").exists():
        print("1/4 reusing the synthetic BBBC039-layout dataset", flush=True)
    else:
        print("1/4 writing a synthetic BBBC039-layout dataset", flush=True)
        shutil.rmtree(data, ignore_errors=True)  # a dataset cut short by a kill
        write_dataset("bbbc039", data, n=args.images, size=192, seed=0)
    common = dict(dataset_dir=str(data), bundle_root=str(run), pretrained=False, num_workers=0, patch_size=[128, 128])
    # what the bundle does with an earlier run's files: continue, or replace them
    checkpoints = list((run / "models").glob("checkpoint_epoch=*.pt"))
    training = dict(resume=True) if args.resume and checkpoints else dict(overwrite=earlier)

    print("2/4 training (ImageNet weights cannot be downloaded here: the encoder starts from scratch)", flush=True)
    # a short run from scratch: higher learning rate, batch-norm statistics that keep up with it
    passes = -(-len((data / "metadata" / "training.txt").read_text().split()) // 4)  # one pass in batches of 4
    bundle_cli(
        "training",
        ["train.json"],
        **common,
        **training,
        epochs=args.epochs,
        iterations_per_epoch=passes,
        batch_size=4,
        learning_rate=1e-3,
        bn_momentum=0.1,
        val_interval=max(args.epochs // 4, 1),
    )

    print("3/4 evaluating on the test split", flush=True)
    bundle_cli("evaluating", ["train.json", "evaluate.json"], **common, overwrite=earlier)
    report = json.loads((run / "eval" / "instance_metrics_test.json").read_text())

    print("4/4 segmenting the test images with the inference config", flush=True)
    test_names = [line.strip() for line in (data / "metadata" / "test.txt").read_text().splitlines() if line.strip()]
    inputs = out / INPUTS
    inputs.mkdir(exist_ok=True)
    for name in test_names:
        shutil.copy(data / "images" / name.replace(".png", ".tif"), inputs)
    # resuming, the images already segmented by this model are skipped; earlier predictions of another are redone
    predictions = out / "predictions"
    redo = earlier and not (args.resume and newer(predictions / "inference_log.csv", run / "models" / "model.pt"))
    bundle_cli(
        "inferring",
        ["inference.json"],
        dataset_dir=str(inputs),
        bundle_root=str(run),
        output_dir=str(predictions),
        patch_size=[128, 128],
        overwrite=redo,
    )

    first = test_names[0].replace(".png", "")
    write_panel(
        inputs / f"{first}.tif", data / "masks" / f"{first}.png", predictions / f"{first}_label.tiff", out / "panel.png"
    )
    print(
        f"\nDSB watershed bundle on {report['images']} synthetic test images: mean-average F1 (IoU 0.50-0.95) "
        f"{report['mean_f1']:.3f}, F1@0.50 {report['f1@0.50']:.3f} "
        f"(precision {report['precision']:.3f}, recall {report['recall']:.3f})\n"
        f"report: {run / 'eval'}\npredictions: {predictions}\npanel: {out / 'panel.png'}"
    )


if __name__ == "__main__":
    main()
