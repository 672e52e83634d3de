"""End-to-end demo of the DSB nuclei watershed bundle on synthetic data, through the MONAI bundle CLI.

Writes a small synthetic BBBC039-layout dataset, trains the bundle for a few minutes on CPU, evaluates it on
the test split with the Caicedo mean-average F1, segments the test images with the inference config, and
draws ``panel.png``: image, ground-truth outlines, predicted outlines. Usage::

    python scripts/demo.py --out demo_output [--epochs 100]

Everything goes under ``--out``; a folder that this demo did not create is never written into.
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


def prepare_output(out: Path) -> None:
    """Create ``out``; clear it only if an earlier run of this demo created it."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            sys.exit(f"demo: {out} exists and was not made by this demo; choose another --out.")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).touch()


def bundle_cli(run_id: str, config_files: list[str], **overrides) -> None:
    """Run ``python -m monai.bundle run`` from the bundle folder, streaming its output."""
    command = [
        sys.executable, "-m", "monai.bundle", "run", run_id,
        "--meta_file", "configs/metadata.json",
        "--config_file", str([f"configs/{name}" for name in config_files]),
        "--logging_file", "configs/logging.conf",
    ]
    for key, value in overrides.items():
        command += [f"--{key}", value if isinstance(value, str) else repr(value)]
    print("\n$ " + " ".join(command), flush=True)
    subprocess.run(command, cwd=BUNDLE, check=True)


def outlines(labels: np.ndarray) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    return find_boundaries(labels, mode="inner")


def write_panel(image_path: Path, label_path: Path, prediction_path: Path, destination: Path) -> None:
    """(image | ground truth in green | prediction in magenta) side by side as an 8-bit RGB PNG."""
    from PIL import Image

    from common.io import read_image, read_instance_labels

    image = read_image(image_path).astype(np.float32)
    image = image if image.ndim == 2 else image[..., :3].mean(-1)
    low, high = np.percentile(image, (0.5, 99.5))
    grey = (np.clip((image - low) / max(high - low, 1e-6), 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    truth, predicted = rgb.copy(), rgb.copy()
    truth[outlines(read_instance_labels(label_path))] = (0, 255, 0)
    predicted[outlines(read_image(prediction_path).astype(np.int64))] = (255, 0, 255)
    gap = np.full((rgb.shape[0], 4, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([rgb, gap, truth, gap, predicted], axis=1)).save(destination)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "demo_output", help="output folder")
    parser.add_argument("--epochs", type=int, default=100, help="training epochs (3 iterations each)")
    parser.add_argument("--images", type=int, default=24, help="synthetic images (half for training)")
    args = parser.parse_args()
    out = args.out.resolve()
    prepare_output(out)

    from common.data.synthetic import write_dataset

    print("1/4 writing a synthetic BBBC039-layout dataset", flush=True)
    data = write_dataset("bbbc039", out / "bbbc039", n=args.images, size=192, seed=0)
    run = out / "bundle_run"
    common = dict(dataset_dir=str(data), bundle_root=str(run), pretrained=False, num_workers=0, patch_size=[128, 128])

    print("2/4 training (ImageNet weights cannot be downloaded here: the encoder starts from scratch)", flush=True)
    # a short run from scratch: higher learning rate, batch-norm statistics that keep up with it
    passes = -(-len((data / "metadata" / "training.txt").read_text().split()) // 4)  # one pass in batches of 4
    bundle_cli("training", ["train.json"], **common, epochs=args.epochs, iterations_per_epoch=passes, batch_size=4,
               learning_rate=1e-3, bn_momentum=0.1, val_interval=max(args.epochs // 4, 1))

    print("3/4 evaluating on the test split", flush=True)
    bundle_cli("evaluating", ["train.json", "evaluate.json"], **common)
    report = json.loads((run / "eval" / "instance_metrics_test.json").read_text())

    print("4/4 segmenting the test images with the inference config", flush=True)
    test_names = [line.strip() for line in (data / "metadata" / "test.txt").read_text().splitlines() if line.strip()]
    inputs = out / "inference_input"
    inputs.mkdir()
    for name in test_names:
        shutil.copy(data / "images" / name.replace(".png", ".tif"), inputs)
    bundle_cli("inferring", ["inference.json"], dataset_dir=str(inputs), bundle_root=str(run),
               output_dir=str(out / "predictions"), patch_size=[128, 128])

    first = test_names[0].replace(".png", "")
    write_panel(inputs / f"{first}.tif", data / "masks" / f"{first}.png",
                out / "predictions" / f"{first}_label.tiff", out / "panel.png")
    print(
        f"\nDSB watershed bundle on {report['images']} synthetic test images: mean-average F1 (IoU 0.50-0.95) "
        f"{report['mean_f1']:.3f}, F1@0.50 {report['f1@0.50']:.3f} "
        f"(precision {report['precision']:.3f}, recall {report['recall']:.3f})\n"
        f"report: {run / 'eval'}\npredictions: {out / 'predictions'}\npanel: {out / 'panel.png'}"
    )


if __name__ == "__main__":
    main()
