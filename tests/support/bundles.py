"""The bundles under test, their specs and the bundle CLI, as the bundle tests use them.

Each bundle has ``tests/bundles/specs/<bundle name>.json``:
- ``synthetic``: ``{"layout", "n", "size", "seed", ...}`` passed to ``common.data.synthetic.write_dataset``;
- ``inference_input``: the folder of the synthetic dataset that inference reads;
- ``overrides`` / ``inference_overrides``: CLI overrides that make training / inference small and offline;
- ``outputs``: ``evaluate`` (JSON report under bundle_root, with an ``images`` count), ``inference_glob``
  (pattern under the inference output_dir, ``**`` allowed), optional ``inference_count`` (default: one output
  per file of the input folder) and ``model`` (checkpoint under bundle_root, default ``models/model.pt``);
- ``metric``: the function of ``tests/support/reference_metrics.py`` that recomputes the evaluation report's metric;
- ``torchscript``: ``"trace"`` for a network ``torch.jit.script`` cannot compile (exported with ``--use_trace``).

The fixtures built on these (``bundle``, ``spec``, ``dataset``, ``release``, ``reference_outputs``) are in
``tests/conftest.py``.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

REPO = Path(__file__).resolve().parents[2]
BUNDLES = sorted(path for path in (REPO / "bundles").iterdir() if (path / "configs").is_dir())
SPECS = REPO / "tests" / "bundles" / "specs"
SCHEMA = REPO.parent / "shared" / "schemas" / "meta_schema_20240725.json"


def load_spec(bundle: Path) -> dict:
    """The bundle's spec (see the module docstring); a bundle without one fails with the instruction."""
    spec_file = SPECS / f"{bundle.name}.json"
    if not spec_file.exists():
        pytest.fail(
            f"{bundle.name}: add {spec_file.relative_to(REPO)} saying which synthetic data and overrides test it."
        )
    return json.loads(spec_file.read_text())


def save_untrained_weights(
    bundle: Path, root: Path, overrides: dict | None = None, model_file: str = "models/model.pt"
) -> Path:
    """Write the seeded initial weights of the bundle's inference network (with ``overrides``) to root/model_file."""
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.update(overrides or {})
    torch.manual_seed(0)
    (root / model_file).parent.mkdir(parents=True, exist_ok=True)
    torch.save(parser.get_parsed_content("network_def").state_dict(), root / model_file)
    return root / model_file


def untrained_copy(bundle: Path, spec: dict, work: Path) -> Path:
    """A copy of the bundle under ``work`` (no models, outputs or caches) holding the seeded untrained weights of
    its inference network with the spec's ``inference_overrides``, at the spec's model file; returns the copy."""
    source = work / bundle.name
    shutil.copytree(bundle, source, ignore=shutil.ignore_patterns("models", "eval", "predictions", "__pycache__"))
    model_file = spec["outputs"].get("model", "models/model.pt")
    save_untrained_weights(source, source, spec.get("inference_overrides", {}), model_file)
    return source


def assert_same_outputs(got_dir: Path, expected_dir: Path, pattern: str) -> None:
    """Same files; integer images (labels) bitwise equal, float images to float tolerance, same dtype."""
    from common.io import read_image

    expected = {p.relative_to(expected_dir).as_posix(): read_image(p) for p in sorted(expected_dir.glob(pattern))}
    got = {p.relative_to(got_dir).as_posix(): read_image(p) for p in sorted(got_dir.glob(pattern))}
    assert list(got) == list(expected) and expected, f"{sorted(got)} != {sorted(expected)}"
    for name, image in expected.items():
        assert got[name].dtype == image.dtype, name
        if np.issubdtype(image.dtype, np.integer):
            np.testing.assert_array_equal(got[name], image, err_msg=name)
        else:
            np.testing.assert_allclose(got[name], image, rtol=1e-5, atol=1e-6, err_msg=name)


def configs(bundle: Path, *names: str) -> list[str]:
    return [str(bundle / "configs" / name) for name in names]


def parser_for(bundle: Path, *names: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(configs(bundle, *names))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    return parser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cli_value(value) -> str:
    return value if isinstance(value, str) else repr(value)


def cli_command(bundle: Path, run_id: str, config_names, overrides: dict, launcher=(sys.executable, "-m")) -> list:
    """The ``monai.bundle run`` command line a user would type (with ``--key value`` overrides)."""
    command = [
        *launcher,
        "monai.bundle",
        "run",
        run_id,
        "--meta_file",
        str(bundle / "configs" / "metadata.json"),
        "--config_file",
        str(configs(bundle, *config_names)),
        "--logging_file",
        str(bundle / "configs" / "logging.conf"),
    ]
    for key, value in overrides.items():
        command += [f"--{key}", cli_value(value)]
    return command


CLI_ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
# for runs whose configs use the test-only handlers of ``tests.support`` (and this tree's ``common``)
SUPPORT_ENV = dict(CLI_ENV, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def cli(bundle: Path, run_id: str, config_names, overrides: dict, launcher=(sys.executable, "-m"), env=CLI_ENV):
    """Run ``monai.bundle run`` from the bundle folder; returns ``(exit status, stdout + stderr)``."""
    command = cli_command(bundle, run_id, config_names, overrides, launcher)
    done = subprocess.run(command, cwd=bundle, env=env, capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout + done.stderr


def run_cli(
    bundle: Path, run_id: str, config_names, overrides: dict, launcher=(sys.executable, "-m"), env=CLI_ENV
) -> str:
    """Run ``monai.bundle run`` as a user would; return its output, failing the test with it on error."""
    status, output = cli(bundle, run_id, config_names, overrides, launcher, env)
    assert status == 0, f"{run_id} {config_names} {overrides}\nexited {status}:\n{output[-6000:]}"
    return output


@contextmanager
def cli_in_background(bundle: Path, run_id: str, config_names, overrides: dict, log: Path, env=CLI_ENV):
    """Run ``monai.bundle run`` as :func:`run_cli` does, in the background while the ``with`` block runs (its
    output to ``log``); at the block's end wait for it, failing the test with its output on error."""
    command = cli_command(bundle, run_id, config_names, overrides)
    with open(log, "w") as stream:
        process = subprocess.Popen(command, cwd=bundle, env=env, stdout=stream, stderr=subprocess.STDOUT, text=True)
        try:
            yield process
            status = process.wait(timeout=900)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert status == 0, f"{run_id} {config_names} {overrides}\nexited {status}:\n{log.read_text()[-6000:]}"


def evaluate_run(
    bundle: Path, dataset: Path, root: Path, overrides: dict, report: str, config_names=("train.json",)
) -> dict:
    """Evaluate the model under ``root`` (bundle_root) on ``dataset`` with ``config_names`` + evaluate.json and
    ``overrides``; return its JSON report ``root/eval/<report>``."""
    run_cli(
        bundle,
        "evaluating",
        [*config_names, "evaluate.json"],
        {**overrides, "dataset_dir": str(dataset), "bundle_root": str(root)},
    )
    return json.loads((root / "eval" / report).read_text())


def train_and_evaluate(
    bundle: Path, dataset: Path, root: Path, overrides: dict, training: dict, report: str, config_names=("train.json",)
) -> dict:
    """Train the bundle on ``dataset`` into ``root`` with ``config_names`` and ``overrides`` plus the
    ``training`` ones, then evaluate it as :func:`evaluate_run` (with ``overrides`` only); return the report."""
    run_cli(
        bundle,
        "training",
        list(config_names),
        {**overrides, "dataset_dir": str(dataset), "bundle_root": str(root), **training},
    )
    return evaluate_run(bundle, dataset, root, overrides, report, config_names)


needs_deploy = pytest.mark.skipif(
    importlib.util.find_spec("monai.deploy") is None,
    reason="MONAI Deploy SDK not installed (pip install -e '.[deploy]')",
)


def deploy_overrides(spec: dict) -> list[str]:
    """The spec's inference overrides as ``--set id=value`` arguments of the Deploy application."""
    return [
        arg
        for key, value in spec.get("inference_overrides", {}).items()
        for arg in ("--set", f"{key}={json.dumps(value)}")
    ]


def deploy_app(bundle_zip: Path, inputs: Path, out: Path, spec: dict, workdir: Path) -> subprocess.CompletedProcess:
    """Run the MONAI Deploy application (``python -m common.deploy``) on ``bundle_zip`` as a user would, from
    ``workdir`` (also its ``HOLOSCAN_WORKDIR``), with the spec's inference overrides; returns the finished process."""
    command = [sys.executable, "-m", "common.deploy", "--bundle", str(bundle_zip), "-i", str(inputs), "-o", str(out)]
    env = dict(CLI_ENV, HOLOSCAN_WORKDIR=str(workdir))
    return subprocess.run(
        command + deploy_overrides(spec), cwd=workdir, env=env, capture_output=True, text=True, timeout=900
    )


def attach_config(path: Path, engine_id: str, handler_id: str, handler: dict) -> str:
    """Write an override config that adds ``handler`` (a test-only handler of ``tests.support.recording``) to the
    engine ``engine_id`` after the bundle's ``initialize``; returns its path, for ``config_names``. Run the bundle
    with ``env=SUPPORT_ENV`` so that the handler can be imported."""
    path.write_text(json.dumps({handler_id: handler, "+initialize": [f"$@{handler_id}.attach(@{engine_id})"]}))
    return str(path)
