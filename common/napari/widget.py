"""napari widget: pick a bundle (folder or exported zip), run its inference on an image layer, add the result.

The inference runs in a thread worker with napari's progress bar, so the viewer stays responsive; the result
layers (labels for masks, one image per fluorescence channel) take the image layer's scale.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import napari
from magicgui.types import FileDialogMode
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton, RadioButtons
from napari.layers import Image, Layer
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error

from common.napari.inference import BundleRunner, LayerData, layer_pixels, output_layers

__all__ = ["BundleWidget"]


def _infer(
    runners: dict, bundle: Path, overrides: dict, pixels, name: str, pixel_size, fields: dict, scale: Sequence[float]
) -> Generator[None, None, list[LayerData]]:
    """Generator run by the worker: build (or reuse) the bundle's runner, predict, return the result layers."""
    key = (str(bundle), json.dumps(overrides, sort_keys=True))
    if key not in runners:
        runners[key] = BundleRunner(bundle, overrides)
    yield  # progress: bundle loaded
    output = runners[key].predict(pixels, name, pixel_size, fields)
    yield  # progress: predicted
    return output_layers(runners[key], output, name, scale)


class BundleWidget(Container):
    """Dock widget (npe2 command ``monai-microscopy-bundles.run_bundle``).

    Fields: ``source`` (folder or zip), ``bundle`` (its path), ``image`` (an image layer), ``overrides`` (JSON
    object of inference config overrides, e.g. ``{"device": "cpu"}``), ``fields`` (JSON object of datalist
    entries, e.g. ``{"magnification": 40}`` for the adipocyte bundle). ``run()`` starts and returns the worker.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.source = RadioButtons(label="bundle is a", choices=["folder", "zip"], orientation="horizontal")
        self.source.value = "folder"
        self.bundle = FileEdit(label="bundle", mode=FileDialogMode.EXISTING_DIRECTORY)
        self.image = ComboBox(label="image", choices=self._image_layers)
        self.overrides = LineEdit(label="overrides", tooltip='inference config overrides, JSON: {"device": "cpu"}')
        self.fields = LineEdit(label="item fields", tooltip='datalist entries, JSON: {"magnification": 40}')
        self.run_button = PushButton(text="Run bundle")
        self.status = Label(value="")
        self.extend([self.source, self.bundle, self.image, self.overrides, self.fields, self.run_button, self.status])
        self.source.changed.connect(self._set_mode)
        self.run_button.changed.connect(self.run)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self.image.reset_choices)
        self._runners: dict = {}
        self.worker: Any = None

    def _image_layers(self, widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _set_mode(self, source: str) -> None:
        self.bundle.mode = FileDialogMode.EXISTING_FILE if source == "zip" else FileDialogMode.EXISTING_DIRECTORY
        self.bundle.filter = "*.zip" if source == "zip" else None

    @staticmethod
    def _json(widget: LineEdit) -> dict:
        text = (widget.value or "").strip()
        value = json.loads(text) if text else {}
        if not isinstance(value, Mapping):
            raise ValueError(f"{widget.label}: expected a JSON object, got {text!r}.")
        return dict(value)

    def run(self, *_: Any) -> Any:
        """Start the bundle's inference on the chosen image layer in a worker thread; returns the worker (its
        ``returned`` signal adds the layers)."""
        layer = self.image.value
        if layer is None:
            raise ValueError("image: choose an image layer to run the bundle on.")
        bundle = Path(str(self.bundle.value))
        scale = [float(s) for s in layer.scale[-2:]]
        pixel_size = layer.metadata.get("pixel_size_um")
        if pixel_size is None and scale != [1.0, 1.0]:
            pixel_size = scale  # a scale set by hand is taken as the pixel size in micrometres
        pixels = layer_pixels(layer.data, layer.rgb)
        self.status.value = f"running {bundle.name} on {layer.name}..."
        worker = create_worker(
            _infer,
            self._runners,
            bundle,
            self._json(self.overrides),
            pixels,
            layer.name,
            pixel_size,
            self._json(self.fields),
            scale,
            _progress={"total": 2, "desc": f"{bundle.name} on {layer.name}"},
        )
        worker.returned.connect(self._add_layers)
        worker.errored.connect(self._failed)
        self.worker = worker
        worker.start()
        return worker

    def _add_layers(self, layers: list[LayerData]) -> None:
        for data, kwargs, layer_type in layers:
            self.viewer.add_layer(Layer.create(data, kwargs, layer_type))
        self.status.value = f"added {', '.join(kwargs['name'] for _, kwargs, _ in layers)}"

    def _failed(self, error: Exception) -> None:
        self.status.value = f"failed: {error}"
        show_error(f"{self.bundle.value}: {type(error).__name__}: {error}")
