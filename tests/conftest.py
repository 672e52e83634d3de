"""Test settings and the bundle fixtures that tests/bundles and tests/reliability share.

Helpers live in the package ``tests.support`` (the repository root is on ``sys.path`` through setup.cfg's
``pythonpath``); tests import them as ``from tests.support.bundles import run_cli``.
"""

import os
from pathlib import Path

import pytest
import torch

from common.bundle import export_bundle
from common.data.synthetic import write_dataset
from tests.support.bundles import BUNDLES, load_spec, run_cli, untrained_copy

# two threads alone; one per worker when pytest-xdist runs tests side by side
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))


# under pytest-xdist (`-n 2 --dist loadgroup`) each bundle's tests stay on one worker, so its training fixture runs once
@pytest.fixture(
    scope="module",
    params=[pytest.param(b, marks=pytest.mark.xdist_group(b.name)) for b in BUNDLES],
    ids=[bundle.name for bundle in BUNDLES],
)
def bundle(request) -> Path:
    return request.param


@pytest.fixture(scope="module")
def spec(bundle) -> dict:
    return load_spec(bundle)


@pytest.fixture(scope="module")
def dataset(bundle, spec, tmp_path_factory) -> Path:
    synthetic = dict(spec["synthetic"])
    layout = synthetic.pop("layout")
    return write_dataset(layout, tmp_path_factory.mktemp(bundle.name) / layout, **synthetic)


@pytest.fixture(scope="module")
def release(bundle, spec, tmp_path_factory) -> dict:
    """A copy of the bundle with seeded untrained weights (``source``), and its exported zip (``zip``)."""
    work = tmp_path_factory.mktemp(f"{bundle.name}_release")
    source = untrained_copy(bundle, spec, work)
    model_file = spec["outputs"].get("model", "models/model.pt")
    return {"source": source, "zip": export_bundle(source, work / "dist"), "model_file": model_file}


@pytest.fixture(scope="module")
def reference_outputs(bundle, spec, dataset, release, tmp_path_factory) -> Path:
    """Output folder of the release's ``inferring`` run through the bundle CLI, from its source folder."""
    out = tmp_path_factory.mktemp(f"{bundle.name}_reference")
    run_cli(
        release["source"],
        "inferring",
        ["inference.json"],
        {
            **spec.get("inference_overrides", {}),
            "dataset_dir": str(dataset / spec["inference_input"]),
            "bundle_root": str(release["source"]),
            "output_dir": str(out),
        },
    )
    return out
