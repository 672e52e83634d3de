"""Screenshot of napari with the plugin's widget after running a bundle on an image (the README's picture).

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/napari_screenshot.py --bundle BUNDLE \\
        [--image FILE] [--set id=value ...] [--out docs/napari_dsb.png]

BUNDLE is a bundle folder or exported zip; ``--set`` overrides an id of its inference config (``--set
ckpt_path=/path/model.pt``, ``--set 'patch_size=[128, 128]'``). Without ``--image`` a synthetic BBBC039 nuclei image
(``common.data.synthetic``) is segmented. The image opens through the plugin's reader, so an OME-TIFF gets its
pixel size as the scale.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_set(pairs: list[str]) -> dict:
    """``id=value`` pairs as overrides, the value parsed as JSON where it is JSON."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"--set expects id=value, got {pair!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="bundle folder or exported zip")
    parser.add_argument("--image", type=Path, help="TIFF / OME-TIFF to segment (default: a synthetic one)")
    parser.add_argument("--set", action="append", default=[], metavar="ID=VALUE", help="inference override")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "napari_dsb.png", help="PNG to write")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the inference")
    args = parser.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    from common.napari.reader import read_layers
    from common.napari.widget import BundleWidget

    image = args.image
    if image is None:
        from common.data.synthetic import write_dataset

        data = write_dataset("bbbc039", Path(tempfile.mkdtemp(prefix="napari_screenshot_")), n=2, size=256, seed=3)
        image = sorted((data / "images").iterdir())[0]
    viewer = napari.Viewer(title="monai-microscopy-bundles", show=True)
    viewer.window.resize(1400, 800)
    for data, kwargs, layer_type in read_layers(image):
        viewer.add_layer(napari.layers.Layer.create(data, {**kwargs, "name": "nuclei"}, layer_type))
    widget = BundleWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Run a bundle")
    widget.source.value = "zip" if args.bundle.is_file() else "folder"
    widget.bundle.value = args.bundle.resolve()
    widget.image.value = viewer.layers["nuclei"]
    widget.overrides.value = json.dumps(parse_set(args.set))
    errors: list = []
    worker = widget.run()
    worker.errored.connect(errors.append)
    deadline = time.monotonic() + args.timeout
    while len(viewer.layers) < 2 and not errors and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    if errors or len(viewer.layers) < 2:
        sys.exit(f"napari_screenshot: the bundle gave no layer: {errors or 'timed out'}")
    if viewer.layers["nuclei"].metadata.get("pixel_size_um"):  # the scale is in micrometres
        for layer in viewer.layers:
            layer.units = ("um", "um")
        viewer.scale_bar.visible = True
    viewer.layers[-1].contour = 2
    viewer.layers[-1].opacity = 0.9
    viewer.reset_view()
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):  # no pop-up over the picture
        toast.close()
    for _ in range(20):  # let the canvas draw
        QApplication.processEvents()
        time.sleep(0.05)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"wrote {args.out} ({', '.join(layer.name for layer in viewer.layers)})")
    viewer.close()


if __name__ == "__main__":
    main()
