"""Bundles under test and the synthetic data they run on."""

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


@pytest.fixture(scope="module", params=BUNDLES, ids=[bundle.name for bundle in BUNDLES])
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
