"""The MONAI Deploy application sends large inputs through the bundle's whole-slide path (DSB bundle).

Inputs above the application's size limit (lowered here so that small synthetic slides count as large) and every
OME-Zarr store run through the bundle's ``configs/large_image.json``: the OME-Zarr the application writes holds
the labels that the bundle's own ``inferring_large`` writes for the same slide. The network is the stand-in of
``tests/support/slides.py`` (its instances are the synthetic nuclei), as in ``test_slides_engine.py``.
"""

import csv
import shutil

import numpy as np
import pytest

from common.data.synthetic import write_slide
from common.deploy.pipeline import LARGE_IMAGE_ENV, LARGE_IMAGE_PIXELS, BundlePipeline, large_image_limit
from common.handlers import FolderRunError
from common.io import write_image
from tests.support.bundles import REPO, needs_deploy
from tests.support.slides import infer_blockwise, read_labels, threshold_network

BUNDLE = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"
SETTINGS = {
    "patch_size": [64, 64],
    "device": "cpu",
    "amp": False,
    "dataloader#num_workers": 0,
    "block_size": 64,
    "chunk_size": 32,
    "instance_halo": 96,
    "n_workers": 0,
}
SHAPE = (120, 150)  # 18000 pixels: large above a limit of 64 * 64
LIMIT = 64 * 64


def overrides() -> dict:
    return {**SETTINGS, "network": threshold_network(3, 2)}


@pytest.fixture
def inputs(tmp_path):
    """A folder with a small TIFF (loaded whole), a TIFF of more than LIMIT pixels and an OME-Zarr store of the
    same slide (both whole-slide inputs)."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    write_slide(folder / "slide.ome.zarr", SHAPE, format="ome-zarr-0.4", chunk=32, seed=1)
    write_slide(folder / "big.ome.tiff", SHAPE, format="ome-tiff", chunk=32, seed=1)
    write_image(folder / "small.tiff", np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8))
    return folder


@needs_deploy
def test_app_writes_large_inputs_as_the_bundles_inferring_large(inputs, tmp_path):
    from common.deploy.app import MicroscopyBundleApp

    out = tmp_path / "out"
    argv = ["app", "-i", str(inputs), "-o", str(out), "-m", str(BUNDLE)]
    app = MicroscopyBundleApp(argv, overrides=overrides(), large_image_pixels=LIMIT)
    app.run()
    app.pipeline.finish()  # raises if any input failed

    infer_blockwise(BUNDLE, inputs / "slide.ome.zarr", tmp_path / "ref.ome.zarr", overrides())
    expected = read_labels(tmp_path / "ref.ome.zarr", "nuclei")
    assert len(np.unique(expected)) > 10
    for name in ("slide", "big"):
        np.testing.assert_array_equal(read_labels(out / f"{name}.ome.zarr", "nuclei"), expected, err_msg=name)
        assert (out / f"{name}_cells.csv").read_text() == (tmp_path / "ref_cells.csv").read_text()
    assert (out / "small_label.tiff").is_file()  # the small input took the in-memory path
    assert not (out / "small.ome.zarr").exists()
    with open(out / "inference_log.csv", newline="") as stream:
        done = {row["input"]: row["outputs"] for row in csv.DictReader(stream) if row["status"] == "done"}
    assert done[str(inputs / "slide.ome.zarr")] == "slide.ome.zarr;slide_cells.csv"
    assert set(done) == {str(inputs / name) for name in ("slide.ome.zarr", "big.ome.tiff", "small.tiff")}

    # run again: every input is done, the whole slides included (their outputs are folders)
    again = BundlePipeline(BUNDLE, inputs, out, overrides(), large_image_pixels=LIMIT)
    assert again.large == [] and again.datalist == []


def test_pipeline_splits_by_size_and_a_bundle_without_large_image_json_says_so(inputs, tmp_path):
    """OME-Zarr stores are whole-slide inputs even in a folder without image files for the bundle's datalist; a
    bundle without large_image.json fails on them with an error naming the file, the other inputs go on."""
    bundle = tmp_path / "dsb_copy"
    (bundle / "configs").mkdir(parents=True)
    for name in ("inference.json", "metadata.json"):
        shutil.copy(BUNDLE / "configs" / name, bundle / "configs" / name)
    out = tmp_path / "out"

    split = BundlePipeline(bundle, inputs, out, overrides(), large_image_pixels=LIMIT)
    assert [item["image"] for item in split.datalist] == [str(inputs / "small.tiff")]
    assert [item["image"] for item in split.large] == [str(inputs / n) for n in ("big.ome.tiff", "slide.ome.zarr")]
    whole = BundlePipeline(bundle, inputs, out, overrides(), large_image_pixels=SHAPE[0] * SHAPE[1])
    assert [item["image"] for item in whole.large] == [str(inputs / "slide.ome.zarr")]  # the TIFF is not above

    (inputs / "big.ome.tiff").unlink()
    (inputs / "small.tiff").unlink()
    pipeline = BundlePipeline(bundle, inputs, out, overrides(), large_image_pixels=LIMIT)
    assert pipeline.datalist == [] and pipeline.large == [{"image": str(inputs / "slide.ome.zarr")}]
    with pytest.raises(FileNotFoundError, match=r"slide\.ome\.zarr: .*configs/large_image\.json"):
        pipeline.predict_large(pipeline.large[0])
    pipeline.failed(str(inputs / "slide.ome.zarr"), FileNotFoundError("no large_image.json"))
    with pytest.raises(FolderRunError, match="1 input"):
        pipeline.finish()
    assert "slide.ome.zarr" in (out / "failures.csv").read_text()
    assert not (out / "slide.ome.zarr").exists()


def test_large_image_limit_from_argument_environment_or_default(monkeypatch):
    monkeypatch.delenv(LARGE_IMAGE_ENV, raising=False)
    assert large_image_limit() == LARGE_IMAGE_PIXELS == 8192 * 8192
    monkeypatch.setenv(LARGE_IMAGE_ENV, "1000")
    assert large_image_limit() == 1000 and large_image_limit(5) == 5
    monkeypatch.setenv(LARGE_IMAGE_ENV, "many")
    with pytest.raises(ValueError, match=LARGE_IMAGE_ENV):
        large_image_limit()
    with pytest.raises(ValueError, match="large_image_pixels"):
        large_image_limit(0)
