"""Every bundle as users get it: exported to a zip, downloaded with ``monai.bundle.download``, run and loaded in a
fresh process that cannot import this repository's ``common``; its outputs equal the repository's."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import SCHEMA, assert_same_outputs
from monai.bundle import download

from common.bundle import export_bundle, verify_bundle

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


def test_downloaded_bundle_runs_and_loads_without_this_repository(bundle, spec, dataset, release, reference_outputs,
                                                                  tmp_path):
    downloads = tmp_path / "downloads"
    download(name=bundle.name, url=release["zip"].as_uri(), bundle_dir=str(downloads), progress=False)
    root = downloads / bundle.name
    inputs = dataset / spec["inference_input"]
    overrides = {**spec.get("inference_overrides", {}), "dataset_dir": str(inputs)}

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

    assert_same_outputs(tmp_path / "downloaded", reference_outputs, spec["outputs"]["inference_glob"])
