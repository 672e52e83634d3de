"""The adipocyte bundle for a magnification and channel other than the default (--magnification 40 --channel 2):
training, resuming, evaluation and inference through the CLI, on the suite's synthetic data and overrides."""

import json
import shutil

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from common.data.synthetic import write_dataset
from common.io import read_image
from tests.support.bundles import REPO, load_spec, run_cli

BUNDLE = REPO / "bundles" / "adipocyte_fluorescence_prediction"
OVERRIDE = {"magnification": 40, "channel": 2}

pytestmark = pytest.mark.xdist_group("adipocyte_override")  # one worker runs the module, its fixtures once


@pytest.fixture(scope="module")
def spec():
    return load_spec(BUNDLE)


@pytest.fixture(scope="module")
def dataset(spec, tmp_path_factory):
    synthetic = dict(spec["synthetic"])
    return write_dataset(synthetic.pop("layout"), tmp_path_factory.mktemp("adipocyte_override") / "data", **synthetic)


@pytest.fixture(scope="module")
def trained(spec, dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("adipocyte_override_root")
    output = run_cli(
        BUNDLE,
        "training",
        ["train.json"],
        {**spec["overrides"], **OVERRIDE, "dataset_dir": str(dataset), "bundle_root": str(root)},
    )
    assert "train_loss" in output
    return root


def test_training_writes_the_models_named_after_magnification_and_channel(trained):
    models = trained / "models"
    assert sorted(path.name for path in models.glob("model*.pt")) == ["model_40x_c02.pt", "model_40x_c02_best_ssim.pt"]
    checkpoints = list(models.glob("checkpoint*.pt"))
    assert [path.name.startswith("checkpoint_40x_c02_") for path in checkpoints] == [True]
    # model_<m>x_c0<c>.pt holds the weights of the last epoch (what the original's test script loads)
    last, resumable = torch.load(models / "model_40x_c02.pt"), torch.load(checkpoints[0], weights_only=False)
    assert last.keys() == resumable["model"].keys()
    assert all(torch.equal(last[k], resumable["model"][k]) for k in last)
    # early stopping's counter and best score (the negated validation MSE) travel with the resumable checkpoint
    assert resumable["early_stop"]["counter"] == 0 and resumable["early_stop"]["best_score"] < 0


def test_another_model_trains_into_the_same_models_folder(spec, dataset, trained, tmp_path):
    """20x C01 beside an existing 40x C02 model: each model's files are its own."""
    root = tmp_path / "root"
    shutil.copytree(trained / "models", root / "models")
    before = {path.name: path.read_bytes() for path in (root / "models").iterdir()}
    run_cli(
        BUNDLE, "training", ["train.json"], {**spec["overrides"], "dataset_dir": str(dataset), "bundle_root": str(root)}
    )
    after = {path.name: path.read_bytes() for path in (root / "models").iterdir()}
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == [
        "checkpoint_20x_c01_epoch=1.pt",
        "model_20x_c01.pt",
        "model_20x_c01_best_ssim.pt",
    ]


def test_training_again_over_a_models_files_is_refused(spec, dataset, trained):
    before = {path.name: path.read_bytes() for path in (trained / "models").iterdir()}
    with pytest.raises(AssertionError, match=r"FileExistsError: .*checkpoint_40x_c02_epoch=1\.pt.*--resume True"):
        run_cli(
            BUNDLE,
            "training",
            ["train.json"],
            {**spec["overrides"], **OVERRIDE, "dataset_dir": str(dataset), "bundle_root": str(trained)},
        )
    assert {path.name: path.read_bytes() for path in (trained / "models").iterdir()} == before


@pytest.mark.parametrize("configs", [["inference.json"], ["train.json", "evaluate.json"]])
def test_inference_and_evaluation_load_the_last_epoch_models_unless_best_ssim_is_set(configs):
    for best_ssim, expected in ((False, "model_40x_c02.pt"), (True, "model_40x_c02_best_ssim.pt")):
        parser = ConfigParser()
        parser.read_config([str(BUNDLE / "configs" / name) for name in configs])
        parser["best_ssim"] = best_ssim
        if "evaluate.json" in configs:  # evaluation loads the models of the inference config it builds
            parser["inference#config_file"] = str(BUNDLE / "configs" / "inference.json")
            parser = parser.get_parsed_content("inference")
        assert parser.get_parsed_content("model_name").format(magnification=40, channel=2) == expected


def test_training_resumes_its_own_checkpoint(spec, dataset, trained):
    overrides = {**spec["overrides"], **OVERRIDE, "dataset_dir": str(dataset), "bundle_root": str(trained)}
    epochs = overrides["epochs"]
    output = run_cli(BUNDLE, "training", ["train.json"], {**overrides, "epochs": epochs + 1, "resume": True})
    assert "checkpoint_40x_c02_" in output and f"epoch {epochs} until {epochs + 1} epochs" in output


def test_evaluation_reports_the_40x_c02_model_on_the_40x_test_split(spec, dataset, trained):
    run_cli(
        BUNDLE,
        "evaluating",
        ["train.json", "evaluate.json"],
        {**spec["overrides"], **OVERRIDE, "dataset_dir": str(dataset), "bundle_root": str(trained)},
    )
    report = json.loads((trained / spec["outputs"]["evaluate"]).read_text())
    assert report["images"] == 1  # 9 fields at 40x: 6 training, 2 validation, 1 test
    assert list(report["groups"]["magnification"]) == ["40x"] and list(report["groups"]["channel"]) == ["C02"]
    assert list(report["groups"]["model"]) == ["40x_c02"]
    assert 0 < report["ssim"] <= 1 and report["mse"] > 0
    # the challenge's pooled pixel metric next to the per-image means (one image: the two agree)
    assert report["challenge_pixel_metric"]["images"] == {"40x": 1}
    assert report["challenge_mae_over_median"] == pytest.approx(report["mae_over_median"], rel=1e-6)


def test_inference_predicts_c02_for_every_40x_field_and_names_the_missing_models(spec, dataset, trained, tmp_path):
    inference = {
        **spec.get("inference_overrides", {}),
        "dataset_dir": str(dataset / spec["inference_input"]),
        "bundle_root": str(trained),
        "output_dir": str(tmp_path / "out"),
    }
    output = run_cli(BUNDLE, "inferring", ["inference.json"], inference)
    written = sorted(path.relative_to(tmp_path / "out").as_posix() for path in (tmp_path / "out").rglob("*.tif"))
    fields = sorted(path.name[: -len("A04Z01C04.tif")] for path in (dataset / "40x_images").glob("*A04Z01C04.tif"))
    assert written == [f"40x_images/{field}A02Z01C02.tif" for field in fields] and len(fields) == 9
    prediction = read_image(tmp_path / "out" / written[0])
    plane = read_image(dataset / "40x_images" / f"{fields[0]}A04Z01C04.tif")
    assert prediction.dtype == np.uint16 and prediction.shape == plane.shape
    assert "model_20x_c01.pt" in output and "20x images are skipped" in output
    assert "model_40x_c01.pt, model_40x_c03.pt" in output and "not predicted" in output
    # the same command again (as after a kill) finds every field done and rewrites nothing
    written_at = {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in written}
    again = run_cli(BUNDLE, "inferring", ["inference.json"], inference)
    assert "9 of 9 inputs already done, skipped" in again
    assert {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in written} == written_at
