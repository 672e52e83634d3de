"""The MONAI Deploy application runs every bundle and writes what the bundle's own inference writes."""

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import assert_same_outputs
from monai.data import MetaTensor

pytestmark = pytest.mark.skipif(importlib.util.find_spec("monai.deploy") is None,
                                reason="MONAI Deploy SDK not installed (pip install -e '.[deploy]')")


def test_deploy_app_output_equals_bundle_inference(bundle, spec, dataset, release, reference_outputs, tmp_path):
    out = tmp_path / "deploy_out"
    command = [sys.executable, "-m", "common.deploy", "--bundle", str(release["zip"]),
               "-i", str(dataset / spec["inference_input"]), "-o", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", HOLOSCAN_WORKDIR=str(tmp_path))
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert_same_outputs(out, reference_outputs, spec["outputs"]["inference_glob"])


def test_sdk_image_round_trip_keeps_dtype_and_metadata_the_stock_operator_reads():
    from common.deploy.operators import from_sdk_image, to_sdk_image

    labels = MetaTensor(torch.tensor([[[0, 300], [70000, 1]]], dtype=torch.int32),
                        meta={"filename_or_obj": "/data/a.ome.tiff", "pixel_size_um": (0.5, 0.25)})
    image = to_sdk_image(labels)
    meta = image.metadata()
    assert {"spacing", "original_affine", "original_channel_dim"} <= set(meta)  # read by MonaiBundleInferenceOperator
    back = from_sdk_image(image)
    assert back.dtype == torch.int32 and back.meta["pixel_size_um"] == (0.5, 0.25)
    np.testing.assert_array_equal(back.numpy(), labels.numpy())  # ids above 255 kept


def test_plain_app_py_with_holoscan_path_variables(bundle, spec, dataset, release, reference_outputs, tmp_path):
    """The folder `make map-app` builds for `monai-deploy package`, run as the MAP runs it (one bundle suffices)."""
    from conftest import BUNDLES, REPO

    if bundle != BUNDLES[0]:
        pytest.skip("the MAP folder is checked with one bundle; the application is the same for all")
    app = tmp_path / "map_app"
    shutil.copytree(REPO / "common", app / "common", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("app.py", "app.yaml", "requirements.txt"):
        shutil.copy(REPO / "common" / "deploy" / name, app / name)
    out = tmp_path / "output"
    env = {"PATH": os.environ["PATH"], "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "HOLOSCAN_INPUT_PATH": str(dataset / spec["inference_input"]), "HOLOSCAN_OUTPUT_PATH": str(out),
           "HOLOSCAN_MODEL_PATH": str(release["zip"]), "HOLOSCAN_WORKDIR": str(tmp_path)}
    script = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]; " \
             "sys.argv = ['app.py']; import runpy; runpy.run_path('app.py', run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", script], cwd=app, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert_same_outputs(out, reference_outputs, spec["outputs"]["inference_glob"])
