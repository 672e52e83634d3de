"""The napari plugin in a real viewer (napari's ``make_napari_viewer``; run under Xvfb, see the Makefile).

The widget runs the DSB bundle's exported zip (seeded untrained weights, the suite's ``release`` fixture) on an
image layer; its labels layer must equal the file the bundle's own ``monai.bundle run inferring`` writes for the
same image, and keep the layer's scale. The reader opens OME-TIFFs written by ``common.io`` with their pixel size.
"""

import configparser
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

from npe2 import PluginManager, PluginManifest  # noqa: E402

from common.io import read_image, write_image  # noqa: E402
from tests.support.bundles import REPO, run_cli  # noqa: E402

PLUGIN = "monai-microscopy-bundles"
MANIFEST = REPO / "common" / "napari" / "napari.yaml"


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The DSB bundle only (overrides conftest's parametrised fixture, so ``release`` and ``spec`` are DSB's)."""
    return REPO / "bundles" / "dsb_nuclei_watershed_segmentation"


@pytest.fixture
def plugin():
    """The plugin's manifest, registered with npe2 where the installed package predates it (an editable install
    made before the entry point existed); a fresh install registers it through the ``napari.manifest`` entry point."""
    manager = PluginManager.instance()
    if PLUGIN not in manager._manifests:
        manager.register(PluginManifest.from_file(MANIFEST))
    return manager.get_manifest(PLUGIN)


def test_setup_cfg_declares_the_manifest(plugin):
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    entry = setup["options.entry_points"]["napari.manifest"].strip()
    name, target = (part.strip() for part in entry.split("="))
    package, file = target.split(":")
    assert name == PLUGIN == plugin.name
    assert REPO.joinpath(*package.split("."), file) == MANIFEST
    assert file in setup["options.package_data"][package]
    assert {command.id for command in plugin.contributions.commands} == {
        f"{PLUGIN}.run_bundle",
        f"{PLUGIN}.get_reader",
    }


def test_widget_result_equals_the_bundles_inference(make_napari_viewer, qtbot, release, spec, dataset, tmp_path):
    from common.napari.widget import BundleWidget

    image_file = sorted((dataset / spec["inference_input"]).iterdir())[0]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(image_file, inputs)
    overrides = spec["inference_overrides"]
    run_cli(
        release["source"],
        "inferring",
        ["inference.json"],
        {**overrides, "dataset_dir": str(inputs), "bundle_root": str(release["source"]), "output_dir": str(tmp_path)},
    )
    (expected_file,) = tmp_path.glob(spec["outputs"]["inference_glob"])
    expected = read_image(expected_file)

    viewer = make_napari_viewer()
    image = viewer.add_image(read_image(image_file), name="nuclei", scale=(0.5, 0.25))
    widget = BundleWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.source.value = "zip"
    widget.bundle.value = release["zip"]
    widget.image.value = image
    widget.overrides.value = json.dumps(overrides)
    errors: list = []
    worker = widget.run()
    worker.errored.connect(errors.append)
    qtbot.waitUntil(lambda: len(viewer.layers) == 2 or bool(errors), timeout=60_000)
    assert not errors, errors

    result = viewer.layers[1]
    assert type(result).__name__ == "Labels"
    assert result.name == "nuclei dsb_nuclei_watershed_segmentation"
    np.testing.assert_array_equal(result.scale, [0.5, 0.25])
    assert result.data.shape == expected.shape == image.data.shape
    assert expected.max() > 1  # several nuclei: the comparison is not of two empty masks
    np.testing.assert_array_equal(result.data, expected)


def test_reader_opens_ome_tiff_with_the_pixel_size(make_napari_viewer, plugin, tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, (24, 32)).astype(np.uint16)
    fluorescence = rng.random((24, 32)).astype(np.float32)
    write_image(tmp_path / "cells_label.ome.tif", labels, pixel_size=(0.65, 0.325))
    write_image(tmp_path / "cells_Nucleus.ome.tiff", fluorescence, pixel_size=(0.2, 0.2))

    viewer = make_napari_viewer()
    (mask,) = viewer.open(tmp_path / "cells_label.ome.tif", plugin=PLUGIN)
    (nucleus,) = viewer.open(tmp_path / "cells_Nucleus.ome.tiff", plugin=PLUGIN)
    assert type(mask).__name__ == "Labels" and type(nucleus).__name__ == "Image"
    assert (mask.name, nucleus.name) == ("cells_label", "cells_Nucleus")
    np.testing.assert_array_equal(mask.data, labels)
    np.testing.assert_array_equal(nucleus.data, fluorescence)
    np.testing.assert_allclose(mask.scale, [0.65, 0.325])
    np.testing.assert_allclose(nucleus.scale, [0.2, 0.2])
    np.testing.assert_allclose(mask.metadata["pixel_size_um"], [0.65, 0.325])
