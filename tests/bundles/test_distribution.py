"""Every bundle as users get it: exported to a zip, downloaded with ``monai.bundle.download``, run and loaded in a
fresh process that cannot import this repository's ``common``, and run by the MONAI Deploy application; the
outputs equal those of the bundle's own inference from the repository."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import download
from monai.data import MetaTensor

from common.bundle import export_bundle, verify_bundle
from common.bundle.export import NOT_EXPORTED, copy_package
from tests.support.bundles import (
    BUNDLES,
    REPO,
    SCHEMA,
    assert_same_outputs,
    deploy_app,
    deploy_overrides,
    needs_deploy,
)

# run in the fresh process: forget the editable install of this repository, put the downloaded bundle folder on
# sys.path as a user's app does (the bundle's configs import `common` from there), then run and load the bundle
FORGET_EDITABLE = "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]"
DOWNLOADED_RUN = f"import sys; {FORGET_EDITABLE}\n" + textwrap.dedent("""
    import importlib.util, json
    assert importlib.util.find_spec("common") is None, "common is importable before the bundle is"
    args = json.loads(sys.argv[1])
    from monai.bundle import load, run
    root = args["bundle_root"]
    sys.path.insert(0, root)
    run("inferring", meta_file=root + "/configs/metadata.json", config_file=root + "/configs/inference.json",
        logging_file=root + "/configs/logging.conf", bundle_root=root, **args["overrides"])
    network = load(args["name"], bundle_dir=args["bundle_dir"], model_file=args["model_file"],
                   workflow_type="inference", device="cpu", args_file=args["args_file"])
    import common, torch
    state = torch.load(root + "/" + args["model_file"], weights_only=True)
    same = all(torch.equal(state[k].cpu(), v.cpu()) for k, v in network.state_dict().items())
    print(json.dumps({"common": common.__file__, "network": type(network).__name__, "weights_equal": same}))
""")


def test_zip_holds_one_bundle_folder_with_weights_hashes_and_common(bundle, release):
    import zipfile

    names = zipfile.ZipFile(release["zip"]).namelist()
    version = json.loads((bundle / "configs" / "metadata.json").read_text())["version"]
    assert release["zip"].name == f"{bundle.name}_v{version}.zip"
    assert {name.split("/")[0] for name in names} == {bundle.name}
    assert f"{bundle.name}/common/flows/follow.py" in names and f"{bundle.name}/{release['model_file']}" in names
    assert not {f"{bundle.name}/common/{name}" for name in NOT_EXPORTED} & set(names)  # inference runs without them
    large_files = zipfile.ZipFile(release["zip"]).read(f"{bundle.name}/large_files.yml").decode()
    assert f'path: "{release["model_file"]}"' in large_files and 'hash_type: "sha256"' in large_files
    with pytest.raises(FileExistsError, match=release["zip"].name):
        export_bundle(release["source"], release["zip"].parent)


def test_verify_passes_on_the_zip(spec, release):
    results = verify_bundle(
        release["zip"],
        SCHEMA if SCHEMA.exists() else None,
        report=lambda line: None,
        overrides=spec.get("inference_overrides", {}),
    )
    assert set(results) == {
        "files",
        "metadata schema",
        "version in changelog",
        "weights",
        "network input/output",
        "TorchScript export",
    }
    assert release["model_file"] in results["weights"]  # its hash checked and loaded into the network


def test_downloaded_bundle_runs_and_loads_without_this_repository(
    bundle, spec, dataset, release, reference_outputs, tmp_path
):
    downloads = tmp_path / "downloads"
    download(name=bundle.name, url=release["zip"].as_uri(), bundle_dir=str(downloads), progress=False)
    root = downloads / bundle.name
    inputs = dataset / spec["inference_input"]
    overrides = {**spec.get("inference_overrides", {}), "dataset_dir": str(inputs)}

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args_file = tmp_path / "inference_overrides.json"  # the network the release's weights were made for
    args_file.write_text(json.dumps(spec.get("inference_overrides", {})))
    args = {
        "bundle_root": str(root),
        "bundle_dir": str(downloads),
        "name": bundle.name,
        "args_file": str(args_file),
        "model_file": release["model_file"],
        "overrides": {**overrides, "output_dir": str(tmp_path / "downloaded")},
    }
    done = subprocess.run(
        [sys.executable, "-c", DOWNLOADED_RUN, json.dumps(args)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=900,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(loaded["common"]).is_relative_to(root) and loaded["weights_equal"]

    assert_same_outputs(tmp_path / "downloaded", reference_outputs, spec["outputs"]["inference_glob"])


@needs_deploy
def test_deploy_app_output_equals_bundle_inference(bundle, spec, dataset, release, reference_outputs, tmp_path):
    out = tmp_path / "deploy_out"
    done = deploy_app(release["zip"], dataset / spec["inference_input"], out, spec, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert_same_outputs(out, reference_outputs, spec["outputs"]["inference_glob"])


@needs_deploy
def test_sdk_image_round_trip_keeps_dtype_and_metadata_the_stock_operator_reads():
    from common.deploy.operators import from_sdk_image, to_sdk_image

    labels = MetaTensor(
        torch.tensor([[[0, 300], [70000, 1]]], dtype=torch.int32),
        meta={"filename_or_obj": "/data/a.ome.tiff", "pixel_size_um": (0.5, 0.25)},
    )
    image = to_sdk_image(labels)
    meta = image.metadata()
    assert {"spacing", "original_affine", "original_channel_dim"} <= set(meta)  # read by MonaiBundleInferenceOperator
    back = from_sdk_image(image)
    assert back.dtype == torch.int32 and back.meta["pixel_size_um"] == (0.5, 0.25)
    np.testing.assert_array_equal(back.numpy(), labels.numpy())  # ids above 255 kept


@needs_deploy
def test_plain_app_py_with_holoscan_path_variables(bundle, spec, dataset, release, reference_outputs, tmp_path):
    """The folder `make map-app` builds for `monai-deploy package`, run as the MAP runs it (one bundle suffices)."""
    if bundle != BUNDLES[0]:
        pytest.skip("the MAP folder is checked with one bundle; the application is the same for all")
    app = tmp_path / "map_app"
    copy_package(app)
    for name in ("app.py", "app.yaml", "requirements.txt"):
        shutil.copy(REPO / "common" / "deploy" / name, app / name)
    out = tmp_path / "output"
    env = {
        "PATH": os.environ["PATH"],
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
        "HOLOSCAN_INPUT_PATH": str(dataset / spec["inference_input"]),
        "HOLOSCAN_OUTPUT_PATH": str(out),
        "HOLOSCAN_MODEL_PATH": str(release["zip"]),
        "HOLOSCAN_WORKDIR": str(tmp_path),
    }
    script = (
        f"import sys; {FORGET_EDITABLE}; sys.argv = ['app.py'] + sys.argv[1:]; "
        "import runpy; runpy.run_path('app.py', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *deploy_overrides(spec)],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert_same_outputs(out, reference_outputs, spec["outputs"]["inference_glob"])
