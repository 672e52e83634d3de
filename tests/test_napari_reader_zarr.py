"""The napari plugin's reader opens the whole-slide path's OME-Zarr stores lazily, every pyramid level (no napari
needed: the reader returns napari's layer data; ``test_napari_plugin.py`` opens one in a viewer)."""

import dask.array as da
import numpy as np
import pytest
import zarr

from common.io import write_image
from common.io.slides import OmeZarrWriter
from common.napari.reader import get_reader, read_layers, read_ome_zarr

SHAPE = (40, 52)  # chunk 16: levels of 52, 26 and 13 pixels wide


def write_store(path, ngff: str) -> tuple[np.ndarray, np.ndarray]:
    """A tiny store as the whole-slide path writes it: two named channels, labels "nuclei", pixel size."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4000, (2, *SHAPE)).astype(np.uint16)
    labels = rng.integers(0, 9, SHAPE).astype(np.uint32)
    writer = OmeZarrWriter(path, SHAPE, ("uint16", 2, ["DAPI", "GFP"]), ("nuclei", "uint32"), 16, (0.5, 0.25), ngff)
    writer.write_image(0, 0, image)
    writer.write_labels(0, 0, labels)
    writer.finish()
    return image, labels


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_store_opens_as_multiscale_channel_and_labels_layers(tmp_path, ngff):
    store = tmp_path / "cells.ome.zarr"
    image, labels = write_store(store, ngff)
    assert get_reader(str(store)) is read_ome_zarr
    layers = get_reader(str(store))(str(store))

    assert [(kwargs["name"], kind) for _, kwargs, kind in layers] == [
        ("DAPI", "image"),
        ("GFP", "image"),
        ("nuclei", "labels"),
    ]
    for data, kwargs, _ in layers:
        assert kwargs["multiscale"] and len(data) == 3
        assert all(isinstance(level, da.Array) for level in data)  # lazy: nothing read yet
        assert [level.shape for level in data] == [(40, 52), (20, 26), (10, 13)]
        np.testing.assert_allclose(kwargs["scale"], [0.5, 0.25])
    for c in range(2):
        np.testing.assert_array_equal(layers[c][0][0].compute(), image[c])
        for level in (1, 2):  # the stored pyramid, read here with zarr itself
            np.testing.assert_array_equal(layers[c][0][level].compute(), zarr.open_array(store / str(level))[c])
    nuclei = layers[2][0]
    assert nuclei[0].dtype == np.uint32
    for level in range(3):  # labels pyramids take every second pixel
        np.testing.assert_array_equal(nuclei[level].compute(), labels[:: 2**level, :: 2**level])


def test_reader_choice_by_path(tmp_path):
    write_image(tmp_path / "cells_label.tiff", np.zeros((8, 8), np.uint16))
    (tmp_path / "folder").mkdir()
    assert get_reader(str(tmp_path / "cells_label.tiff")) is read_layers
    assert get_reader(str(tmp_path / "folder")) is None
    assert get_reader(str(tmp_path / "missing.ome.zarr")) is None  # not a folder
