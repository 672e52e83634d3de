"""bioimage.io packages of every bundle (``python -m common.bundle export --format bioimageio``): bioimage.io's own
``bioimageio test`` reruns the test tensors offline, and the package says what it holds and leaves out."""

import dataclasses
import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
import yaml

from common.bundle.__main__ import main
from common.bundle.bioimageio import Op, citations, documentation, export_bioimageio, plan_package
from tests.support.bundles import REPO, parser_for

pytest.importorskip("bioimageio.core")

# per bundle: post-processing operations, a phrase of the "does NOT include" list, and how far the package's
# preprocessing may be from the bundle's own on the test image (what the package's README says it leaves out)
EXPECTED = {
    "adipocyte_fluorescence_prediction": ([], "other magnifications", 1e-4),
    "dsb_nuclei_watershed_segmentation": (["sigmoid"], "watershed", 1 / 510 + 1e-6),
    "livecell_semantic_segmentation": (["sigmoid"], "thresholding", 1e-5),
    "lmc_fluorescence_prediction": ([], "test-time augmentation", 1e-3),
    "mediar_cell_segmentation": ([], "flow following", 0.01),
}


@pytest.fixture(scope="module")
def plan(spec, release):
    return plan_package(release["source"], overrides=spec.get("inference_overrides", {}))


@pytest.fixture(scope="module")
def package(bundle, release, plan, tmp_path_factory):
    return export_bioimageio(release["source"], tmp_path_factory.mktemp(f"{bundle.name}_bioimageio"), plan=plan)


def test_bioimageio_test_passes_offline(package, tmp_path):
    env = dict(os.environ, BIOIMAGEIO_PERFORM_IO_CHECKS="false", BIOIMAGEIO_CACHE_PATH=str(tmp_path / "cache"))
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "bioimageio.core", "test", str(package), "--weight-format", "torchscript"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "passed" in output and "Reproduce test outputs from test inputs" in output


def test_package_content(bundle, release, package):
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    formats = metadata["network_data_format"]
    archive = zipfile.ZipFile(package)
    rdf = yaml.safe_load(archive.read("rdf.yaml"))
    assert rdf["type"] == "model" and rdf["format_version"].startswith("0.5.")
    assert (rdf["name"], rdf["version"], rdf["license"]) == (metadata["name"], metadata["version"], "Apache-2.0")
    assert rdf["cite"] and all(entry.get("doi") or entry.get("url") for entry in rdf["cite"])
    assert set(rdf["weights"]) == {"torchscript"}
    (image,), (pred,) = rdf["inputs"], rdf["outputs"]
    assert len(image["axes"][1]["channel_names"]) == formats["inputs"]["image"]["num_channels"]
    assert len(pred["axes"][1]["channel_names"]) == formats["outputs"]["pred"]["num_channels"]
    post, missing, _ = EXPECTED[bundle.name]
    assert [step["id"] for step in pred.get("postprocessing", []) if step["id"] != "ensure_dtype"] == post
    test_input = np.load(io.BytesIO(archive.read(image["test_tensor"]["source"])))
    test_output = np.load(io.BytesIO(archive.read(pred["test_tensor"]["source"])))
    assert test_input.shape[:2] == (1, formats["inputs"]["image"]["num_channels"])
    assert test_output.shape == (1, formats["outputs"]["pred"]["num_channels"], *test_input.shape[2:])
    readme = archive.read("README.md").decode()
    not_included = readme.split("## What the package does NOT include", 1)[1].split("## Source", 1)[0]
    assert missing in not_included
    assert {"cover.png", "LICENSE"} <= set(archive.namelist())


def test_package_preprocessing_matches_the_bundle(bundle, plan):
    """The spec operations (our implementation, which ``bioimageio test`` checks against bioimage.io's) give the
    bundle's own preprocessing of the test image, up to what the package's README lists as left out."""
    x = torch.as_tensor(plan.raw_input[0])
    for op in plan.preprocessing:
        x = op.apply(x)
    scale = max(1.0, float(np.abs(plan.bundle_input).max()))
    assert np.abs(x.numpy() - plan.bundle_input[0]).max() <= EXPECTED[bundle.name][2] * scale
    if bundle.name == "mediar_cell_segmentation":
        # the synthetic image has zeros, where the bundle's non-zero percentiles differ (the README says so);
        # without zeros only the 8-bit flooring remains
        assert (plan.raw_input == 0).any()
        shifted = torch.as_tensor(plan.raw_input[0]) + 1
        bundle_steps = [t for t in parser_for(bundle, "inference.json").get_parsed_content("preprocessing").transforms]
        expected = bundle_steps[-1]({"image": shifted})["image"]
        for op in plan.preprocessing:
            shifted = op.apply(shifted)
        assert np.abs(shifted.numpy() - np.asarray(expected)).max() <= 1 / 255 + 1e-6


def test_documentation_names_the_checkpoint_inside_or_outside_the_bundle(plan, tmp_path):
    inside = plan.checkpoint.resolve().relative_to(plan.bundle.resolve()).as_posix()
    assert f"`{inside}` as TorchScript" in documentation(plan, [], [])
    elsewhere = tmp_path / "runs" / "model.pt"  # --model /runs/model.pt: a checkpoint trained outside the bundle
    assert f"`{elsewhere}` as TorchScript" in documentation(dataclasses.replace(plan, checkpoint=elsewhere), [], [])


def test_ops_equal_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(2, 5, 7)).astype(np.float32)
    t = torch.as_tensor(x)
    got = Op("scale_range", {"axes": ["y", "x"], "min_percentile": 1.0, "max_percentile": 99.0, "eps": 1e-6}).apply(t)
    low, high = np.percentile(x, 1.0, axis=(1, 2), keepdims=True), np.percentile(x, 99.0, axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(got.numpy(), (x - low) / (high - low + 1e-6), rtol=1e-5, atol=1e-6)
    got = Op("zero_mean_unit_variance", {"axes": ["channel", "y", "x"], "eps": 1e-6}).apply(t)
    np.testing.assert_allclose(got.numpy(), (x - x.mean()) / (x.std() + 1e-6), rtol=1e-5, atol=1e-5)


def test_citations_need_a_link():
    cited, rest = citations(["A. Paper. Journal 1 (2020), https://doi.org/10.1000/xyz", "B. arXiv:2212.03465", "C."])
    assert cited == [
        {"text": "A. Paper. Journal 1 (2020)", "doi": "10.1000/xyz"},
        {"text": "B", "url": "https://arxiv.org/abs/2212.03465"},
    ]
    assert rest == ["C."]


def test_missing_extra_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)
    assert (
        main(
            [
                "export",
                str(REPO / "bundles" / "dsb_nuclei_watershed_segmentation"),
                "--format",
                "bioimageio",
                "--out",
                str(tmp_path),
            ]
        )
        == 1
    )
    assert "[bioimageio]" in capsys.readouterr().err and not list(tmp_path.iterdir())
