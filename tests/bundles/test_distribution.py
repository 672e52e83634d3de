"""Every bundle as users get it: exported to a zip, downloaded with ``monai.bundle.download``, run and loaded in a
fresh process that cannot import this repository's ``common``; its outputs equal the repository's."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SCHEMA
from monai.bundle import download
from test_bundle_suite import parser_for, run_cli

from common.bundle import export_bundle, verify_bundle
from common.io import read_image

# run in the fresh process: forget the editable install of this repository, put the downloaded bundle folder on
# sys.path as a user's app does (the bundle's configs import `common` from there), then run and load the bundle
DOWNLOADED_RUN = textwrap.dedent("""
    import importlib.util, json, sys
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
    assert importlib.util.find_spec("common") is None, "common is importable before the bundle is"
    args = json.loads(sys.argv[1])
    from monai.bundle import load, run
    root = args["bundle_root"]
    sys.path.insert(0, root)
    run("inferring", meta_file=root + "/configs/metadata.json", config_file=root + "/configs/inference.json",
        logging_file=root + "/configs/logging.conf", bundle_root=root, **args["overrides"])
    network = load(args["name"], bundle_dir=args["bundle_dir"], model_file=args["model_file"],
                   workflow_type="inference", device="cpu")
    import common, torch
    state = torch.load(root + "/" + args["model_file"], weights_only=True)
    same = all(torch.equal(state[k].cpu(), v.cpu()) for k, v in network.state_dict().items())
    print(json.dumps({"common": common.__file__, "network": type(network).__name__, "weights_equal": same}))
""")


@pytest.fixture(scope="module")
def release(bundle, spec, tmp_path_factory) -> dict:
    """A copy of the bundle with seeded untrained weights, and its exported zip."""
    work = tmp_path_factory.mktemp(f"{bundle.name}_release")
    source = work / bundle.name
    shutil.copytree(bundle, source, ignore=shutil.ignore_patterns("models", "eval", "predictions", "__pycache__"))
    parser = parser_for(source, "inference.json")
    parser.update(spec.get("inference_overrides", {}))
    torch.manual_seed(0)
    model_file = spec["outputs"].get("model", "models/model.pt")
    (source / model_file).parent.mkdir(parents=True)
    torch.save(parser.get_parsed_content("network_def").state_dict(), source / model_file)
    return {"source": source, "zip": export_bundle(source, work / "dist"), "model_file": model_file}


def read_outputs(folder: Path, pattern: str) -> dict:
    return {path.relative_to(folder).as_posix(): read_image(path) for path in sorted(folder.glob(pattern))}


def test_zip_holds_one_bundle_folder_with_weights_hashes_and_common(bundle, release):
    import zipfile

    names = zipfile.ZipFile(release["zip"]).namelist()
    assert release["zip"].name == f"{bundle.name}_v{json.loads((bundle / 'configs/metadata.json').read_text())['version']}.zip"
    assert {name.split("/")[0] for name in names} == {bundle.name}
    assert f"{bundle.name}/common/flows/follow.py" in names and f"{bundle.name}/{release['model_file']}" in names
    large_files = zipfile.ZipFile(release["zip"]).read(f"{bundle.name}/large_files.yml").decode()
    assert f'path: "{release["model_file"]}"' in large_files and 'hash_type: "sha256"' in large_files
    with pytest.raises(FileExistsError, match=release["zip"].name):
        export_bundle(release["source"], release["zip"].parent)


def test_verify_passes_on_the_zip(release):
    results = verify_bundle(release["zip"], SCHEMA if SCHEMA.exists() else None, report=lambda line: None)
    assert set(results) == {"files", "metadata schema", "version in changelog", "network input/output",
                            "TorchScript export"}


def test_downloaded_bundle_runs_and_loads_without_this_repository(bundle, spec, dataset, release, tmp_path):
    downloads = tmp_path / "downloads"
    download(name=bundle.name, url=release["zip"].as_uri(), bundle_dir=str(downloads), progress=False)
    root = downloads / bundle.name
    inputs = dataset / spec["inference_input"]
    overrides = {**spec.get("inference_overrides", {}), "dataset_dir": str(inputs)}

    run_cli(release["source"], "inferring", ["inference.json"],
            {**overrides, "bundle_root": str(release["source"]), "output_dir": str(tmp_path / "from_repository")})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = {"bundle_root": str(root), "bundle_dir": str(downloads), "name": bundle.name,
            "model_file": release["model_file"], "overrides": {**overrides, "output_dir": str(tmp_path / "downloaded")}}
    done = subprocess.run([sys.executable, "-c", DOWNLOADED_RUN, json.dumps(args)], cwd=elsewhere,
                          capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(loaded["common"]).is_relative_to(root) and loaded["weights_equal"]

    pattern = spec["outputs"]["inference_glob"]
    expected, got = read_outputs(tmp_path / "from_repository", pattern), read_outputs(tmp_path / "downloaded", pattern)
    assert list(got) == list(expected) and expected
    for name, image in expected.items():
        assert got[name].dtype == image.dtype, name
        if np.issubdtype(image.dtype, np.integer):
            np.testing.assert_array_equal(got[name], image, err_msg=name)
        else:
            np.testing.assert_allclose(got[name], image, rtol=1e-5, atol=1e-6, err_msg=name)
