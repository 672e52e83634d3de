"""Whole-slide inference block by block equals the bundle's in-memory inference, and survives kills (DSB bundle).

The DSB bundle's own configs run with a stand-in network (``threshold_network``: its instances are the synthetic
nuclei, touching ones split between their bright centres, so the watershed sees real cells, contested pixels
between touching nuclei, and seams that cut nuclei; without the watershed's raster tie-break blockwise differs).
The sliding window over a network whose output depends on the window's place is tested in
``test_inferers_region.py``.
"""

import json

import numpy as np
import pytest

from common.data.synthetic import write_slide
from common.io.slides import open_slide
from common.slides import SeamError, seam_crossings
from tests.support.bundles import REPO
from tests.support.slides import (
    DieOnce,
    WorkerProbe,
    assert_same_instances,
    infer_blockwise,
    infer_in_memory,
    read_labels,
    read_output,
    threshold_network,
)

BUNDLE = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"
# nuclei split between their bright centres, so touching nuclei compete for the pixels between them
SMALL = {"patch_size": [64, 64], "device": "cpu", "amp": False, "network": threshold_network(3, 2, core_level=0.6)}
BLOCKS = {"block_size": 64, "chunk_size": 32, "instance_halo": 96, "n_workers": 0}
SHAPE = (200, 260)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A synthetic slide (OME-Zarr 0.4) and the bundle's in-memory labels of it."""
    folder = tmp_path_factory.mktemp("dsb_slide")
    slide = folder / "slide.ome.zarr"
    write_slide(slide, SHAPE, format="ome-zarr-0.4", chunk=32, pixel_size=(0.5, 0.5), seed=1, seam_every=128)
    labels = read_output(infer_in_memory(BUNDLE, slide, folder, SMALL), "*_label.tiff")
    assert len(np.unique(labels)) > 20
    assert seam_crossings(labels, 64) > 10  # nuclei on the block seams
    left, right = labels[:, :-1], labels[:, 1:]
    assert np.sum((left > 0) & (right > 0) & (left != right)) > 10  # touching nuclei share contested pixels
    return slide, labels


@pytest.mark.parametrize("format", ["ome-zarr-0.4", "ome-zarr-0.5", "ome-tiff"])
def test_blocks_equal_the_whole_slide_in_memory(tmp_path, reference, format):
    _, expected = reference
    slide = tmp_path / ("slide.ome.tiff" if format == "ome-tiff" else "slide.ome.zarr")
    write_slide(slide, SHAPE, format=format, chunk=32, pixel_size=(0.5, 0.5), seed=1, seam_every=128)
    tiff = str(tmp_path / "nuclei.ome.tif") if format == "ome-zarr-0.5" else None
    summary = infer_blockwise(BUNDLE, slide, tmp_path / "nuclei.ome.zarr", {**SMALL, **BLOCKS, "tiff_output": tiff})
    labels = read_labels(tmp_path / "nuclei.ome.zarr", "nuclei")
    if tiff:  # the same labels as a tiled pyramidal OME-TIFF, with the pixel size
        np.testing.assert_array_equal(open_slide(tiff).array[0].compute(), labels)
        assert open_slide(tiff).pixel_size == (0.5, 0.5) and open_slide(tiff).levels > 1
    assert_same_instances(labels, expected)
    # ids are 1 + the raster index of each nucleus' first pixel, so they do not depend on the blocks
    ids = np.unique(labels)[1:]
    first = np.array([np.flatnonzero(labels.ravel() == i)[0] for i in ids])
    np.testing.assert_array_equal(ids, first + 1)
    # the per-cell table lists each nucleus once, with its area in pixels and square micrometres
    table = np.sort(np.genfromtxt(tmp_path / "nuclei_cells.csv", delimiter=",", names=True), order="id")
    np.testing.assert_array_equal(table["id"], ids)
    np.testing.assert_array_equal(table["area"], [np.sum(labels == i) for i in ids])
    np.testing.assert_allclose(table["area_um2"], table["area"] * 0.25)
    assert summary["cells"] == len(ids) and summary["blocks"] == 4 * 5


def test_two_dask_workers_and_a_worker_that_dies(tmp_path, reference):
    slide, expected = reference
    marker, output, log = tmp_path / "died", tmp_path / "nuclei.ome.zarr", tmp_path / "records.txt"
    # the first worker to predict anything dies without a word; dask.distributed gives its block to another worker
    network = DieOnce(WorkerProbe(SMALL["network"], output, log), marker)
    infer_blockwise(BUNDLE, slide, output, {**SMALL, **BLOCKS, "network": network, "n_workers": 2})
    assert marker.exists()
    assert_same_instances(read_labels(output, "nuclei"), expected)
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    # blocks are written and recorded while the workers predict others (not all at the end: a kill would lose them)
    assert max(call["recorded"] for call in seen) > 0
    # every worker, also the one restarted after the death, runs with engine.WORKER_CONFIG (flat memory, full speed,
    # the engine imported as it starts)
    assert {(call["mmap_threshold"], call["trim_threshold"]) for call in seen} == {(str(16 * 2**20), str(64 * 2**20))}
    settings = {"distributed.worker.profile.enabled": False, "distributed.worker.preload": ["common.slides.engine"]}
    assert all(call["config"] == settings for call in seen)


def test_a_killed_run_resumes_and_ends_as_an_uninterrupted_run(tmp_path, reference, monkeypatch):
    slide, expected = reference
    output = tmp_path / "nuclei.ome.zarr"
    import common.slides.engine as engine

    predict = engine.predict_block
    done = []

    def killed_after_seven(*args, **kwargs):
        if len(done) == 7:
            raise KeyboardInterrupt  # the run stops here, as a kill would stop it
        done.append(args[3])
        return predict(*args, **kwargs)

    monkeypatch.setattr(engine, "predict_block", killed_after_seven)
    with pytest.raises(KeyboardInterrupt):
        infer_blockwise(BUNDLE, slide, output, {**SMALL, **BLOCKS})
    assert not output.exists()
    partial = output.with_name(output.name + ".partial")
    assert len(list((partial / "blocks").glob("*_*.json"))) == 7
    # a different halo cannot continue these blocks
    with pytest.raises(ValueError, match="instance_halo"):
        infer_blockwise(BUNDLE, slide, output, {**SMALL, **BLOCKS, "instance_halo": 80})
    monkeypatch.setattr(engine, "predict_block", predict)
    summary = infer_blockwise(BUNDLE, slide, output, {**SMALL, **BLOCKS})
    assert summary["predicted"] == 20 - 7
    assert_same_instances(read_labels(output, "nuclei"), expected)
    assert not partial.exists()
    # the finished output is not replaced without overwrite
    with pytest.raises(FileExistsError):
        infer_blockwise(BUNDLE, slide, output, {**SMALL, **BLOCKS})


def test_a_halo_narrower_than_a_nucleus_is_refused(tmp_path, reference):
    slide, _ = reference
    with pytest.raises(SeamError, match="raise the halo"):
        infer_blockwise(BUNDLE, slide, tmp_path / "nuclei.ome.zarr", {**SMALL, **BLOCKS, "instance_halo": 8})


@pytest.mark.parametrize("beside", ["nuclei_cells.csv", "nuclei.ome.tif"])
def test_a_table_or_tiff_already_beside_the_output_is_not_replaced(tmp_path, reference, beside):
    slide, _ = reference
    (tmp_path / beside).write_text("a user's file")
    tiff = str(tmp_path / "nuclei.ome.tif")
    with pytest.raises(FileExistsError, match=beside):
        infer_blockwise(BUNDLE, slide, tmp_path / "nuclei.ome.zarr", {**SMALL, **BLOCKS, "tiff_output": tiff})
    assert (tmp_path / beside).read_text() == "a user's file"
    assert sorted(path.name for path in tmp_path.iterdir()) == [beside]  # refused before anything is written
