"""Bundles under test and the synthetic data they run on.

Each bundle has ``specs/<bundle name>.json``:
- ``synthetic``: ``{"layout", "n", "size", "seed", ...}`` passed to ``common.data.synthetic.write_dataset``;
- ``inference_input``: the folder of the synthetic dataset that inference reads;
- ``overrides`` / ``inference_overrides``: CLI overrides that make training / inference small and offline;
- ``outputs``: ``evaluate`` (JSON report under bundle_root, with an ``images`` count), ``inference_glob``
  (pattern under the inference output_dir, ``**`` allowed), optional ``inference_count`` (default: one output
  per file of the input folder) and ``model`` (checkpoint under bundle_root, default ``models/model.pt``).
"""

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLES = sorted(path for path in (REPO / "bundles").iterdir() if (path / "configs").is_dir())
SPECS = Path(__file__).parent / "specs"
SCHEMA = REPO.parent / "shared" / "schemas" / "meta_schema_20240725.json"


def load_spec(bundle: Path) -> dict:
    spec_file = SPECS / f"{bundle.name}.json"
    if not spec_file.exists():
        pytest.fail(f"{bundle.name}: add {spec_file.relative_to(REPO)} saying which synthetic data and overrides test it.")
    return json.loads(spec_file.read_text())


# under pytest-xdist (`-n 2 --dist loadgroup`) each bundle's tests stay on one worker, so its training fixture runs once
@pytest.fixture(scope="module", params=[pytest.param(b, marks=pytest.mark.xdist_group(b.name)) for b in BUNDLES],
                ids=[bundle.name for bundle in BUNDLES])
def bundle(request) -> Path:
    return request.param


@pytest.fixture(scope="module")
def spec(bundle) -> dict:
    return load_spec(bundle)


@pytest.fixture(scope="module")
def dataset(bundle, spec, tmp_path_factory) -> Path:
    from common.data.synthetic import write_dataset

    synthetic = dict(spec["synthetic"])
    layout = synthetic.pop("layout")
    return write_dataset(layout, tmp_path_factory.mktemp(bundle.name) / layout, **synthetic)
