"""The MEDIAR bundle's whole-slide path (configs/large_image.json): blockwise equals its in-memory inference, also on
two Dask workers of which one dies.

Instances use a stand-in network whose output is real flows (``tests.support.slides.flow_network``: trajectories
converge on each synthetic cell's bright centre), so the flow following, clustering and clean-up see real cells and
the seams cut real cells; an untrained MEDIAR gives noise flows whose cells are not local. The bundle's own
inferer runs with test-time flips. The small untrained MEDIAR ensemble (two checkpoints) is run once through the
blockwise path with the post-processing cut, and its dense prediction compared with the in-memory one.
"""

import numpy as np
import pytest
import torch

from common.data.synthetic import write_slide
from common.inferers import DihedralTTAInferer
from common.io import write_image
from common.io.slides import open_slide
from common.metrics import match_instances
from common.networks import AverageEnsemble
from common.slides import seam_crossings
from tests.support.bundles import REPO, SUPPORT_ENV, load_spec, run_cli
from tests.support.slides import (
    DieOnce,
    assert_same_instances,
    flow_network,
    infer_blockwise,
    infer_in_memory,
    parse,
    read_labels,
    read_output,
)

BUNDLE = REPO / "bundles" / "mediar_cell_segmentation"
SHAPE = (192, 256)
FLOWS = {"patch_size": [64, 64], "device": "cpu", "amp": False, "sliding_window#progress": False}
# a block with its instance halo is 144 pixels wide: smaller than the slide, larger than any cell (< 40 pixels)
BLOCKS = {"block_size": 64, "chunk_size": 32, "instance_halo": 40, "n_workers": 0}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A synthetic OME-Zarr slide with cells on the seams of 128-pixel blocks, its cells, and the bundle's
    in-memory labels of it (test-time flips on)."""
    folder = tmp_path_factory.mktemp("mediar_slide")
    slide = folder / "slide.ome.zarr"
    truth = write_slide(slide, SHAPE, chunk=32, seed=1, seam_every=128, return_labels=True)
    assert isinstance(parse(BUNDLE, ["inference.json"], FLOWS).get_parsed_content("inferer"), DihedralTTAInferer)
    labels = read_output(infer_in_memory(BUNDLE, slide, folder, {**FLOWS, "network": flow_network(3)}), "*_label.tiff")
    assert match_instances(truth, labels)["f1"] > 0.95  # the stand-in's flows find the synthetic cells
    return slide, labels


def test_blocks_equal_the_whole_slide_in_memory(tmp_path, reference):
    slide, expected = reference
    output = tmp_path / "cells.ome.zarr"
    # two Dask workers; the first to predict anything dies (as a killed worker), its blocks are redone by the other
    network = DieOnce(flow_network(3), tmp_path / "died")
    summary = infer_blockwise(BUNDLE, slide, output, {**FLOWS, **BLOCKS, "network": network, "n_workers": 2})
    assert (tmp_path / "died").exists()
    labels = read_labels(output, "cells")
    assert_same_instances(labels, expected)
    assert seam_crossings(labels, 64) > 20  # cells cut by block seams come out whole, with one id
    ids = np.unique(labels)[1:]
    table = np.sort(np.genfromtxt(tmp_path / "cells_cells.csv", delimiter=",", names=True), order="id")
    np.testing.assert_array_equal(table["id"], ids)
    assert summary["cells"] == len(ids) and summary["blocks"] == 3 * 4


def test_the_cli_on_a_tiff_drops_the_masks_the_whole_slide_drops(tmp_path, reference):
    """``monai.bundle run inferring_large`` as a user types it, on a TIFF of the same slide, with a
    ``max_size_fraction`` that matters: a block keeps the masks under that fraction of the whole slide's area."""
    slide, default = reference
    tiff = tmp_path / "slide.tif"
    write_slide(tiff, SHAPE, format="tiff", chunk=32, seed=1, seam_every=128)
    fraction = {"postprocessing#transforms#0#max_size_fraction": 0.006}  # 295 of the slide's pixels
    expected = read_output(
        infer_in_memory(BUNDLE, tiff, tmp_path, {**FLOWS, **fraction, "network": flow_network(3)}), "*_label.tiff"
    )
    areas = np.bincount(expected.ravel())[1:]
    assert 0 < np.count_nonzero(areas) < len(np.unique(default)) - 1  # the fraction drops some masks, not all
    assert areas.max() > 0.006 * (64 + 2 * 40) ** 2  # the same fraction of a block's area would drop more
    network = {"_target_": "tests.support.slides.flow_network", "in_channels": 3}
    overrides = {"input": str(tiff), "output": str(tmp_path / "cells.ome.zarr"), "network": network}
    settings = {**FLOWS, "device": "$torch.device('cpu')", **fraction, **BLOCKS, **overrides}
    run_cli(BUNDLE, "inferring_large", ["inference.json", "large_image.json"], settings, env=SUPPORT_ENV)
    assert_same_instances(read_labels(tmp_path / "cells.ome.zarr", "cells"), expected)
    assert open_slide(tmp_path / "cells.ome.zarr").pixel_size == (0.5, 0.5)


def test_the_small_mediar_ensemble_predicts_each_block_as_the_whole_slide(tmp_path):
    """The real network (the spec's small MiT-B0, two untrained checkpoints averaged) with test-time flips: the
    blockwise prediction (post-processing cut: the dense ``[dy, dx, cellprob]`` written) equals the in-memory one."""
    slide = tmp_path / "slide.ome.zarr"
    write_slide(slide, (96, 96), chunk=32, seed=2)
    small = {**load_spec(BUNDLE)["inference_overrides"], "device": "$torch.device('cpu')"}
    torch.manual_seed(0)
    paths = []
    for index in range(2):
        paths.append(tmp_path / f"model_{index}.pt")
        torch.save(parse(BUNDLE, ["inference.json"], small).get_parsed_content("network_def").state_dict(), paths[-1])
    small.update({"ckpt_paths": [str(path) for path in paths], "sliding_window#progress": False})
    parser = parse(BUNDLE, ["inference.json"], small)
    network = parser.get_parsed_content("network").eval()
    assert isinstance(network, AverageEnsemble)
    write_image(tmp_path / "slide.tiff", open_slide(slide).array[0].compute())
    image = parser.get_parsed_content("preprocessing")({"image": str(tmp_path / "slide.tiff")})["image"]
    with torch.no_grad():
        expected = parser.get_parsed_content("inferer")(image[None], network)[0].numpy()
    dense = {
        "block_predictor#kind": "image",
        "slide_inference#channel_names": ["dy", "dx", "cellprob"],
        "postprocessing#transforms": [],
        **BLOCKS,
        "instance_halo": 0,
    }
    summary = infer_blockwise(BUNDLE, slide, tmp_path / "dense.ome.zarr", {**small, **dense})
    got = open_slide(tmp_path / "dense.ome.zarr")
    assert summary["blocks"] == 4 and got.channel_names == ["dy", "dx", "cellprob"]
    np.testing.assert_allclose(got.array.compute(), expected, rtol=0, atol=1e-5 * np.abs(expected).max())
