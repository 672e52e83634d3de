"""Whole slides block by block equal the bundle's in-memory inference for the bundles whose output is blended,
not instances: LIVECell (semantic mask), LMC (four organelles) and adipocyte (fluorescence channels of a z-stack).

Each runs the small untrained network of its spec (``tests/bundles/specs``) on a synthetic slide, in memory (the
bundle's ``inferring`` on the slide read whole) and block by block (``inferring_large`` of ``large_image.json``,
blocks of a few windows, so that every block has seams on two sides) on a local Dask cluster of two workers, the
first of which dies at its first block (``DieOnce``): the scheduler gives its blocks to the others. The whole-slide
statistics (LIVECell's minimum and maximum, LMC's mean and std) and the whole slide's window grid make the two
equal: the mask exactly, the channels to float tolerance. Where ``large_image.json`` changes the in-memory inferer
(LMC: sliding windows in place of the whole image), the reference is the same configs run in memory. Each bundle
then reads the same pixels from the other kind of file (TIFF for an OME-Zarr slide, OME-Zarr for a TIFF one) block by
block in this process, to the same result.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from common.data.synthetic import write_slide
from common.io import LMC_ORGANELLES, lmc_output_folders, read_image
from common.io.slides import open_slide
from common.networks import MagnificationModels
from tests.support.bundles import REPO, load_spec
from tests.support.slides import DieOnce, infer_blockwise, infer_in_memory, parse, read_labels, read_output

BUNDLES = REPO / "bundles"
SHAPE = (128, 176)
#: two Dask worker processes (one of which the network kills), the slide's blocks shared between them
TWO_WORKERS = {"n_workers": 2}


@pytest.fixture(autouse=True)
def one_thread():
    """These tiny networks run fastest on one thread; on a busy machine two threads make each small operation wait
    for the other (the LMC test took 10x longer)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def untrained(bundle: Path, overrides: dict, seed: int) -> torch.nn.Module:
    """The bundle's ``network_def`` with its spec's ``overrides``, randomly initialised from ``seed``."""
    torch.manual_seed(seed)
    return parse(bundle, ["inference.json"], overrides).get_parsed_content("network_def").eval()


def blockwise_from(format: str, slide: Path, bundle: Path, overrides: dict, **write) -> Path:
    """``slide`` written again as ``format`` (same ``write_slide`` arguments ``write``, so the same pixels, which
    this checks) and run block by block in this process, without Dask; returns the OME-Zarr written."""
    copy = slide.parent / ("copy.ome.zarr" if format.startswith("ome-zarr") else "copy.tif")
    write_slide(copy, format=format, **write)
    np.testing.assert_array_equal(open_slide(copy).array.compute(), open_slide(slide).array.compute())
    output = slide.parent / "from_copy.ome.zarr"
    infer_blockwise(bundle, copy, output, {**overrides, "n_workers": 0})
    return output


def channel_names(store: Path) -> list[str]:
    """The omero channel labels of the OME-Zarr ``store``'s image, as the reference reader ``ome_zarr`` reads them."""
    image = next(iter(Reader(parse_url(str(store)))()))
    return list(image.metadata["channel_names"])


def test_livecell_mask_equals_in_memory_transposed_or_not(tmp_path):
    bundle = BUNDLES / "livecell_semantic_segmentation"
    slide = tmp_path / "slide.ome.zarr"
    write = {"size": (200, 260), "chunk": 32, "seed": 2}
    write_slide(slide, format="ome-zarr-0.5", **write)
    # published_orientation: the network sees the slide transposed (96-pixel windows, as the spec's inference keeps)
    settings = {"device": "cpu", "amp": False, "published_orientation": True}
    settings["network"] = untrained(bundle, load_spec(bundle).get("inference_overrides", {}), seed=0)
    expected = read_output(infer_in_memory(bundle, slide, tmp_path, settings), "*_mask.tif")
    assert 0.2 < np.mean(expected == 255) < 0.8  # a mask with much foreground and background, seams included
    output = tmp_path / "cells.ome.zarr"
    dying = {"network": DieOnce(settings["network"], tmp_path / "died"), **TWO_WORKERS}
    blocks = {"block_size": 128, "chunk_size": 64}
    summary = infer_blockwise(bundle, slide, output, {**settings, **dying, **blocks})
    assert summary["blocks"] == 2 * 3 and (tmp_path / "died").exists()
    np.testing.assert_array_equal(read_labels(output, "cells"), expected)
    # the root image is the slide itself
    np.testing.assert_array_equal(open_slide(output).array.compute(), open_slide(slide).array.compute())
    # the bundle's default orientation (the network sees the slide as it is), from a TIFF of the same pixels
    upright = {**settings, "published_orientation": False}
    expected_upright = read_output(infer_in_memory(bundle, slide, tmp_path / "upright", upright), "*_mask.tif")
    assert np.mean(expected_upright != expected) > 0.01  # the orientation changes the untrained network's mask
    from_tiff = blockwise_from("tiff", slide, bundle, {**upright, **blocks}, **write)
    np.testing.assert_array_equal(read_labels(from_tiff, "cells"), expected_upright)


def test_lmc_organelles_with_sliding_windows_equal_in_memory(tmp_path):
    bundle = BUNDLES / "lmc_fluorescence_prediction"
    slide = tmp_path / "slide.ome.tiff"
    write = {"size": SHAPE, "chunk": 32, "seed": 3}
    write_slide(slide, format="ome-tiff", **write)
    small = load_spec(bundle)["inference_overrides"]  # efficientnet-b0
    networks = {
        name: untrained(bundle, small, seed)
        for seed, name in enumerate(("network", "network_actin", "network_tubulin"))
    }
    settings = {
        "device": "cpu",
        "amp": False,
        "available": ["base", "actin", "tubulin"],
        **networks,
        "window_size": [32, 32],
        "slide_window#sw_batch_size": 32,
    }
    names = ("inference.json", "large_image.json")
    folder = infer_in_memory(bundle, slide, tmp_path, settings, names=names)
    expected = np.stack([read_output(folder / name, "slide.ome.tiff") for name in lmc_output_folders(LMC_ORGANELLES)])
    assert expected.shape == (4, *SHAPE) and expected.std() > 1e-3
    output = tmp_path / "organelles.ome.zarr"
    dying = {"network": DieOnce(settings["network"], tmp_path / "died"), **TWO_WORKERS}
    blocks = {"block_size": 64, "chunk_size": 32}
    summary = infer_blockwise(bundle, slide, output, {**settings, **dying, **blocks})
    assert summary["blocks"] == 2 * 3 and (tmp_path / "died").exists()
    np.testing.assert_allclose(open_slide(output).array.compute(), expected, rtol=0, atol=1e-5)
    assert channel_names(output) == list(LMC_ORGANELLES)
    from_zarr = blockwise_from("ome-zarr-0.5", slide, bundle, {**settings, **blocks}, **write)
    np.testing.assert_allclose(open_slide(from_zarr).array.compute(), expected, rtol=0, atol=1e-5)


def test_adipocyte_channels_of_a_z_stack_equal_in_memory(tmp_path):
    bundle = BUNDLES / "adipocyte_fluorescence_prediction"
    slide = tmp_path / "slide.ome.zarr"
    write = {"size": SHAPE, "chunk": 32, "z_planes": 7, "seed": 4}
    write_slide(slide, format="ome-zarr-0.4", **write)  # 7 planes -> 7 channels
    small = load_spec(bundle)["inference_overrides"]  # 32-pixel tiles, narrow network
    nuclei, cytoplasm = untrained(bundle, small, 1), untrained(bundle, small, 3)
    models = MagnificationModels({20: {1: nuclei, 3: cytoplasm}})
    settings = {**small, "device": "cpu", "network": models, "intensity_scale": 4000.0}
    # in memory: the slide's 7 planes as one file of the 20x folder's datalist, written unrounded (float32)
    item = {"image": str(tmp_path / "images" / "slide.tiff"), "id": "slide", "magnification": 20, "channels": [1, 3]}
    reference = {**settings, "datalist": [item], "postprocessing#transforms#1#dtype": "float32"}
    folder = infer_in_memory(bundle, slide, tmp_path, reference) / "20x_images"
    expected = np.stack([read_image(folder / f"slideA{c:02d}Z01C{c:02d}.tif") for c in (1, 3)])
    assert expected.shape == (2, *SHAPE) and expected.std() > 1.0
    output = tmp_path / "fluorescence.ome.zarr"
    dying = MagnificationModels({20: {1: DieOnce(nuclei, tmp_path / "died"), 3: cytoplasm}})
    blocks = {"magnification": 20, "block_size": 64, "chunk_size": 32, **TWO_WORKERS}
    summary = infer_blockwise(bundle, slide, output, {**settings, "network": dying, **blocks})
    assert summary["blocks"] == 2 * 3 and (tmp_path / "died").exists()
    np.testing.assert_allclose(open_slide(output).array.compute(), expected, rtol=1e-5, atol=1e-5)
    assert channel_names(output) == ["C01 nuclei", "C03 cytoplasm"]
    # a TIFF keeps the planes as its Z axis, which the reader merges into the same 7 channels
    from_tiff = blockwise_from("tiff", slide, bundle, {**settings, **blocks, "network": models}, **write)
    np.testing.assert_allclose(open_slide(from_tiff).array.compute(), expected, rtol=1e-5, atol=1e-5)


def test_adipocyte_magnification_without_models_is_refused(tmp_path):
    bundle = BUNDLES / "adipocyte_fluorescence_prediction"
    slide = tmp_path / "slide.ome.zarr"
    write_slide(slide, 64, format="ome-zarr-0.4", chunk=32, z_planes=7)
    small = load_spec(bundle)["inference_overrides"]
    settings = {**small, "device": "cpu", "network": MagnificationModels({20: {1: untrained(bundle, small, 1)}})}
    with pytest.raises(ValueError, match="no network for 40x"):
        infer_blockwise(bundle, slide, tmp_path / "out.ome.zarr", {**settings, "magnification": 40, "n_workers": 0})
    assert not list(tmp_path.glob("out.ome.zarr*"))  # refused before anything is written
