"""The napari plugin in a real viewer (napari's ``make_napari_viewer``; run under Xvfb, see the Makefile).

The widget runs the DSB bundle's exported zip (seeded untrained weights, the suite's ``release`` fixture) on an
image layer; its labels layer must equal the file the bundle's own ``monai.bundle run inferring`` writes for the
same image, and keep the layer's scale. It runs the fluorescence bundles (LMC, adipocyte) from their folders the
same way: one image layer per predicted channel, named after it, equal to the bundle's file of that channel. The
reader opens OME-TIFFs written by ``common.io`` with their pixel size, and the whole-slide path's OME-Zarr stores as
multiscale layers.
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

from common.data.synthetic import write_dataset  # noqa: E402
from common.io import (  # noqa: E402
    LMC_ORGANELLES,
    adipocyte_datalist,
    lmc_output_folders,
    read_image,
    read_pixel_size,
    write_image,
)
from tests.support.bundles import REPO, cli_in_background, load_spec, run_cli, untrained_copy  # noqa: E402

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


def run_widget(viewer, qtbot, image, bundle: Path, overrides: dict, fields: dict | None = None) -> list:
    """Run ``bundle`` (a folder or an exported zip) from the plugin's widget on the layer ``image`` of ``viewer``, as
    a user would fill in the fields; returns the layers it added, failing the test with the worker's error."""
    from common.napari.widget import BundleWidget

    before = len(viewer.layers)
    widget = BundleWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.source.value = "zip" if bundle.suffix == ".zip" else "folder"
    widget.bundle.value = bundle
    widget.image.value = image
    widget.overrides.value = json.dumps(overrides)
    widget.fields.value = json.dumps(fields or {})
    widget.run()
    qtbot.waitUntil(lambda: widget.status.value.startswith(("added", "failed")), timeout=60_000)
    assert widget.status.value.startswith("added"), widget.status.value
    return list(viewer.layers)[before:]


def test_widget_result_equals_the_bundles_inference(make_napari_viewer, qtbot, release, spec, dataset, tmp_path):
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
    (result,) = run_widget(viewer, qtbot, image, release["zip"], overrides)
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


def test_reader_opens_an_ome_zarr_store_as_multiscale_layers(make_napari_viewer, plugin, tmp_path):
    from tests.test_napari_reader_zarr import write_store

    store = tmp_path / "cells.ome.zarr"
    image, labels = write_store(store, "0.4")
    viewer = make_napari_viewer()
    layers = viewer.open(store, plugin=PLUGIN)
    assert [(type(layer).__name__, layer.name) for layer in layers] == [
        ("Image", "DAPI"),
        ("Image", "GFP"),
        ("Labels", "nuclei"),
    ]
    assert all(layer.multiscale and len(layer.data) == 3 for layer in layers)
    np.testing.assert_allclose(layers[2].scale, [0.5, 0.25])
    np.testing.assert_array_equal(np.asarray(layers[1].data[0]), image[1])
    np.testing.assert_array_equal(np.asarray(layers[2].data[0]), labels)


def lmc_case(work: Path) -> dict:
    """One transmitted-light plane of a synthetic LMC study (an OME-TIFF with its pixel size) as a 2-D layer."""
    dataset = write_dataset("lmc", work / "lmc", n=1, size=48, seed=0, studies=1)
    image_file = dataset / "Study_1" / "image_1_BF_z1.ome.tiff"
    inputs = work / "inputs"
    inputs.mkdir()
    shutil.copy(image_file, inputs)
    folders = lmc_output_folders(LMC_ORGANELLES)
    return {
        "inputs": inputs,
        "pixels": read_image(image_file),
        "scale": read_pixel_size(image_file),
        "fields": {},
        "outputs": {f"BF {name}": Path(folder, image_file.name) for name, folder in zip(LMC_ORGANELLES, folders)},
    }


def adipocyte_case(work: Path) -> dict:
    """The seven brightfield planes of a synthetic 20x adipocyte field as a (Z, H, W) layer, the pixel size set by
    hand (the challenge's files carry none); only the 20x nuclei model exists (the spec's model file)."""
    dataset = write_dataset("adipocyte", work / "adipocyte", n=1, size=48, seed=0)
    (item,) = adipocyte_datalist(dataset, require_targets=False)
    return {
        "inputs": dataset,
        "pixels": np.stack([read_image(file) for file in item["brightfield"]]),
        "scale": (0.65, 0.65),
        "fields": {"magnification": 20},
        "outputs": {"BF C01 nuclei": Path("20x_images", f"{item['id']}A01Z01C01.tif")},
    }


@pytest.mark.parametrize(
    "name, case",
    [("lmc_fluorescence_prediction", lmc_case), ("adipocyte_fluorescence_prediction", adipocyte_case)],
    ids=["lmc", "adipocyte"],
)
def test_widget_fluorescence_layers_equal_the_bundles_files(make_napari_viewer, qtbot, name, case, tmp_path):
    spec = load_spec(REPO / "bundles" / name)
    source = untrained_copy(REPO / "bundles" / name, spec, tmp_path)
    data = case(tmp_path)
    overrides = spec["inference_overrides"]
    out = tmp_path / "out"
    cli_overrides = {
        **overrides,
        "dataset_dir": str(data["inputs"]),
        "bundle_root": str(source),
        "output_dir": str(out),
    }
    with cli_in_background(source, "inferring", ["inference.json"], cli_overrides, tmp_path / "inferring.log"):
        viewer = make_napari_viewer()
        scale = (1.0,) * (data["pixels"].ndim - 2) + tuple(data["scale"])  # z planes (adipocyte) unscaled
        image = viewer.add_image(data["pixels"], name="BF", scale=scale)
        layers = run_widget(viewer, qtbot, image, source, overrides, data["fields"])

    assert [layer.name for layer in layers] == list(data["outputs"])
    for layer, file in zip(layers, data["outputs"].values()):
        expected = read_image(out / file)
        assert type(layer).__name__ == "Image", layer.name
        np.testing.assert_allclose(layer.scale, data["scale"], err_msg=layer.name)
        if read_pixel_size(out / file) is not None:  # the bundle's file says the pixel size it got from the input
            np.testing.assert_allclose(read_pixel_size(out / file), layer.scale, err_msg=layer.name)
        assert np.ptp(expected) > 0, file  # an untrained network's output still varies: not two constant images
        assert layer.data.dtype == expected.dtype, layer.name
        np.testing.assert_allclose(layer.data, expected, rtol=1e-5, atol=1e-5, err_msg=layer.name)


def test_runner_raises_the_bundles_own_error_for_an_image_it_cannot_take(tmp_path):
    """The bundles' folder run records a failed input instead of raising; the widget's runner raises its error."""
    from common.napari.inference import BundleRunner

    name = "adipocyte_fluorescence_prediction"
    spec = load_spec(REPO / "bundles" / name)
    runner = BundleRunner(untrained_copy(REPO / "bundles" / name, spec, tmp_path), spec["inference_overrides"])
    stack = np.zeros((32, 32, 7), np.uint16)  # (H, W, planes), as BundleRunner takes a layer's (Z, H, W)
    with pytest.raises(RuntimeError, match=r"adipocyte_fluorescence_prediction on BF: .*'magnification'"):
        runner.predict(stack, "BF")  # no {"magnification": 20}: which model to run is unknown
