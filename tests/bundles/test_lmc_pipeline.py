"""LMC bundle end to end through its CLI: fine-tuning from the base checkpoint, then inference that takes each
organelle from the right checkpoint (base with test-time augmentation, fine-tuned actin without), recomputed here;
the model kept, refusals to replace an earlier run's files, and a damaged slice no run would read."""

import re
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser

from common.data.synthetic import write_dataset
from common.inferers import DihedralTTAInferer
from common.io import LMC_ORGANELLES, read_image, read_pixel_size
from tests.support.bundles import REPO, cli, run_cli

BUNDLE = REPO / "bundles" / "lmc_fluorescence_prediction"
SMALL = {"backbone": "efficientnet-b0", "pretrained": False, "num_workers": 0}
TRAIN = {**SMALL, "epochs": 1, "batch_size": 2, "val_interval": 1, "val_fraction": 0.5, "patch_size": [64, 64]}


def network(state=None) -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser["backbone"] = SMALL["backbone"]
    net = parser.get_parsed_content("network_def")
    if state is not None:
        net.load_state_dict(torch.load(state, weights_only=True))
    return net.eval()


def distance(first: torch.nn.Module, second: torch.nn.Module) -> float:
    return sum((a - b).square().sum().item() for a, b in zip(first.parameters(), second.parameters())) ** 0.5


def predict(net, path, tta: bool) -> np.ndarray:
    """Whole-image prediction as the method makes it: /65535, whiten, zero-pad bottom/right to x32, crop back."""
    image = torch.from_numpy(read_image(path).astype(np.float32) / 65535.0)[None, None]
    image = (image - image.mean()) / image.std()
    height, width = image.shape[-2:]
    padded = F.pad(image, (0, -width % 32, 0, -height % 32))
    with torch.no_grad():
        out = DihedralTTAInferer(group="d4")(padded, net) if tta else net(padded)
    return out[0, :, :height, :width].numpy()


def test_fine_tuning_starts_from_the_base_model_and_inference_routes_organelles(tmp_path):
    dataset = write_dataset("lmc", tmp_path / "lmc", n=8, size=80, seed=1)
    root = tmp_path / "root"
    (root / "models").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(network().state_dict(), root / "models" / "model.pt")
    base_bytes = (root / "models" / "model.pt").read_bytes()

    output = run_cli(
        BUNDLE,
        "training",
        ["train.json", "finetune_actin.json"],
        {**TRAIN, "dataset_dir": str(dataset), "bundle_root": str(root)},
    )
    assert f"loaded the weights of {root / 'models' / 'model.pt'}" in output
    assert (root / "models" / "model.pt").read_bytes() == base_bytes  # the base checkpoint is left as it was
    assert sorted(path.name for path in (root / "models").iterdir()) == [
        "actin_checkpoint_epoch=1.pt",
        "model.pt",
        "model_actin.pt",
    ]  # beside the base model, its own files
    base, actin = network(root / "models" / "model.pt"), network(root / "models" / "model_actin.pt")
    torch.manual_seed(1)
    assert 0 < distance(base, actin) < 0.05 * distance(base, network())  # fine-tuned from the base, not from scratch

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("image_4_BF_z1.ome.tiff", "image_8_BF_z0.ome.tiff"):  # study 4: a BF study with all four organelles
        shutil.copy(dataset / "Study_4" / name, inputs / name)
    output = run_cli(
        BUNDLE,
        "inferring",
        ["inference.json"],
        {**SMALL, "dataset_dir": str(inputs), "bundle_root": str(root), "output_dir": str(tmp_path / "out")},
    )
    assert "model_tubulin.pt not found" in output
    assert "Actin: predicted by 'actin'" in output
    assert "Tubulin: predicted by 'base' ('tubulin' not available)" in output

    for source in sorted(inputs.iterdir()):
        with_tta, fine_tuned = predict(base, source, tta=True), predict(actin, source, tta=False)
        expected = {"Nucleus": with_tta[0], "Mitochondria": with_tta[1], "Tubulin": with_tta[2], "Actin": fine_tuned[3]}
        for organelle in LMC_ORGANELLES:
            written = tmp_path / "out" / f"{organelle.lower()}-fluorescence-ome-tiff" / source.name
            pixels = read_image(written)
            assert pixels.dtype == np.float32 and read_pixel_size(written) == read_pixel_size(source)
            np.testing.assert_allclose(pixels, expected[organelle], atol=1e-5, err_msg=f"{organelle} of {source.name}")
        assert not np.allclose(with_tta[3], fine_tuned[3], atol=1e-4)  # actin really comes from the fine-tuned model


def test_schedules_train_as_many_epochs_as_the_original_before_its_kept_checkpoints():
    """LMC's loops count epochs from 0 and name a checkpoint after the epoch index: model_and_optimizer_140.pth
    holds 141 epochs, actin 199 holds 200 (its last of range(200)), tubulin 200 holds 201 (of range(300)).
    Each run has its own model file and checkpoint prefix, so the three share one models/ folder."""
    epochs = {}
    for overlay in (None, "finetune_actin.json", "finetune_tubulin.json"):
        parser = ConfigParser()
        parser.read_config([str(BUNDLE / "configs" / name) for name in ("train.json", overlay) if name])
        epochs[overlay] = tuple(parser[key] for key in ("epochs", "keep_model", "model_name", "checkpoint_prefix"))
    assert epochs == {
        None: (141, "last", "model.pt", "checkpoint"),
        "finetune_actin.json": (200, "last", "model_actin.pt", "actin_checkpoint"),
        "finetune_tubulin.json": (201, "last", "model_tubulin.pt", "tubulin_checkpoint"),
    }


def test_training_keeps_the_weights_of_its_last_epoch_or_of_the_best_validation(tmp_path):
    dataset = write_dataset("lmc", tmp_path / "lmc", n=8, size=80, seed=1)
    last, best = tmp_path / "last", tmp_path / "best"
    output = run_cli(
        BUNDLE,
        "training",
        ["train.json"],
        {**TRAIN, "epochs": 2, "dataset_dir": str(dataset), "bundle_root": str(last)},
    )
    assert f"{last / 'models' / 'model.pt'}: saved the last model (epoch 2)" in output
    assert sorted(path.name for path in (last / "models").iterdir()) == ["checkpoint_epoch=2.pt", "model.pt"]
    final = torch.load(last / "models" / "checkpoint_epoch=2.pt", weights_only=True)
    assert final["trainer"]["iteration"] == 2 * final["trainer"]["epoch_length"]  # two whole epochs trained
    kept = torch.load(last / "models" / "model.pt", weights_only=True)
    assert kept.keys() == final["model"].keys()
    assert all(torch.equal(kept[key], final["model"][key]) for key in kept)  # the weights after epoch 2

    # validation every epoch: the best PCC of the two is kept, after the epoch that reached it
    output = run_cli(
        BUNDLE,
        "training",
        ["train.json"],
        {**TRAIN, "epochs": 2, "keep_model": "best", "dataset_dir": str(dataset), "bundle_root": str(best)},
    )
    best_epoch = re.findall(r"Key metric: val_mean_pcc best value: \S+ at epoch: (\d+)", output)[-1]
    assert f"{best / 'models' / 'model.pt'}: saved the best model (epoch {best_epoch})" in output, output[-3000:]
    assert "saved the last model" not in output
    with pytest.raises(AssertionError, match=r"keep: expected 'best' or 'last', got 'bets'"):
        run_cli(
            BUNDLE,
            "training",
            ["train.json"],
            {**TRAIN, "keep_model": "bets", "dataset_dir": str(dataset), "bundle_root": str(tmp_path / "typo")},
        )


def test_retraining_over_its_own_files_is_refused_unless_resume_or_overwrite(tmp_path):
    dataset = write_dataset("lmc", tmp_path / "lmc", n=8, size=80, seed=1)
    root = tmp_path / "root"
    overrides = {**TRAIN, "dataset_dir": str(dataset), "bundle_root": str(root)}
    actin = ["train.json", "finetune_actin.json"]
    run_cli(BUNDLE, "training", ["train.json"], overrides)
    run_cli(BUNDLE, "training", actin, overrides)  # fine-tuning beside model.pt: its own files
    models = {path.name: path.read_bytes() for path in (root / "models").iterdir()}
    with pytest.raises(AssertionError, match="FileExistsError") as refused:
        run_cli(BUNDLE, "training", actin, overrides)
    assert str(root / "models" / "actin_checkpoint_epoch=1.pt") in str(refused.value)
    assert "--resume True" in str(refused.value) and "--overwrite True" in str(refused.value)
    assert {path.name: path.read_bytes() for path in (root / "models").iterdir()} == models
    output = run_cli(BUNDLE, "training", actin, {**overrides, "epochs": 2, "resume": True})
    assert "actin_checkpoint_epoch=1.pt: resuming after epoch 1" in output
    assert sorted(path.name for path in (root / "models").iterdir()) == [
        "actin_checkpoint_epoch=2.pt",
        "checkpoint_epoch=1.pt",
        "model.pt",
        "model_actin.pt",
    ]
    assert (root / "models" / "model.pt").read_bytes() == models["model.pt"]
    written = (root / "models" / "model.pt").stat().st_mtime_ns
    run_cli(BUNDLE, "training", ["train.json"], {**overrides, "overwrite": True})
    assert (root / "models" / "model.pt").stat().st_mtime_ns != written  # trained again and replaced,
    assert (root / "models" / "model.pt").read_bytes() == models["model.pt"]  # to the same weights: same seed


def test_a_damaged_slice_stops_training_before_it_starts(tmp_path):
    dataset = write_dataset("lmc", tmp_path / "lmc", n=8, size=80, seed=1)
    slices = sorted((dataset / "Study_2").glob("image_*_z*.ome.tiff"))
    slices[0].write_bytes(b"")
    slices[-1].write_bytes(b"garbage")
    status, output = cli(
        BUNDLE,
        "training",
        ["train.json"],
        {**TRAIN, "dataset_dir": str(dataset), "bundle_root": str(tmp_path / "root")},
    )
    assert status != 0 and "LayoutError" in output, output[-3000:]
    assert f"{slices[0]}: empty file (0 bytes)." in output
    assert f"{slices[-1]}: cannot read the TIFF header" in output
    assert not (tmp_path / "root" / "models").exists() or not list((tmp_path / "root" / "models").iterdir())
