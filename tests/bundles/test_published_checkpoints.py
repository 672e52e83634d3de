"""LMC and DSB inference on checkpoints saved as the originals save them (smp Unet state dicts), through the
bundle CLI: the outputs equal those of the same weights saved as the bundle's own checkpoint."""

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from common.data.synthetic import write_dataset
from common.networks import EfficientNetUNet
from tests.support.bundles import REPO, assert_same_outputs, load_spec, run_cli
from tests.support.smp_reference import random_smp_unet

SMALL = "efficientnet-b0"
LMC = REPO / "bundles" / "lmc_fluorescence_prediction"


def as_own_checkpoint(smp_state: dict, network: torch.nn.Module, path: Path) -> Path:
    """The same tensors under our names, matched by position (both list encoder, decoder blocks and head in
    smp's order), not by the renaming under test; saved as CheckpointSaver saves ``{"model": ...}``."""
    ours = network.state_dict()
    assert len(ours) == len(smp_state)
    renamed = {}
    for (name, target), value in zip(ours.items(), smp_state.values()):
        assert target.shape == value.shape, name
        renamed[name] = value
    torch.save({"model": renamed}, path)
    return path


def infer(bundle: Path, dataset: Path, out: Path, checkpoints: dict) -> Path:
    spec = load_spec(bundle)
    run_cli(
        bundle,
        "inferring",
        ["inference.json"],
        {
            **spec.get("inference_overrides", {}),
            **checkpoints,
            "bundle_root": str(out.parent),
            "dataset_dir": str(dataset / spec["inference_input"]),
            "output_dir": str(out),
        },
    )
    return out


def assert_holds(network: torch.nn.Module, path: Path, label: str) -> None:
    """``network`` holds the weights of the own-format checkpoint file ``path``."""
    loaded = network.state_dict()
    for name, value in torch.load(path, weights_only=True)["model"].items():
        torch.testing.assert_close(loaded[name], value, msg=f"{label}: {name}")


def assert_networks_hold(bundle: Path, overrides: dict, expected: dict) -> None:
    """The inference config's networks (id -> own-format checkpoint file) hold those weights."""
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.update({**load_spec(bundle).get("inference_overrides", {}), **overrides, "device": "cpu"})
    for network_id, path in expected.items():
        assert_holds(parser.get_parsed_content(network_id), path, network_id)


def synthetic(bundle: Path, tmp_path: Path) -> Path:
    options = dict(load_spec(bundle)["synthetic"])
    layout = options.pop("layout")
    return write_dataset(layout, tmp_path / layout, **options)


def lmc_checkpoints(tmp_path: Path) -> tuple[dict, dict]:
    """base, actin and tubulin as jfozard/LMC saves them ({"model_state_dict", "optimizer_state_dict"}) and the
    same weights as the bundle's own checkpoints: two sets of ``checkpoints#<name>`` overrides."""
    published, own = {}, {}
    for seed, name in enumerate(("base", "actin", "tubulin")):
        state = random_smp_unet(SMALL, 1, 4, "sigmoid", seed).state_dict()
        torch.save({"model_state_dict": state, "optimizer_state_dict": {}}, tmp_path / f"{name}.pth")
        published[f"checkpoints#{name}"] = str(tmp_path / f"{name}.pth")
        own[f"checkpoints#{name}"] = str(
            as_own_checkpoint(state, EfficientNetUNet(SMALL, 1, 4, activation="sigmoid"), tmp_path / f"{name}.pt")
        )
    return published, own


def test_lmc_inference_on_the_published_checkpoint_format(tmp_path):
    """On the published files inference writes what it writes on the same weights as the bundle's own files."""
    dataset = synthetic(LMC, tmp_path)
    published, own = lmc_checkpoints(tmp_path)
    # each checkpoint id feeds its own network (the original passed actin and tubulin swapped)
    assert_networks_hold(
        LMC,
        published,
        {
            "network": own["checkpoints#base"],
            "network_actin": own["checkpoints#actin"],
            "network_tubulin": own["checkpoints#tubulin"],
        },
    )
    got = infer(LMC, dataset, tmp_path / "published" / "out", published)
    expected = infer(LMC, dataset, tmp_path / "own" / "out", own)
    assert_same_outputs(got, expected, load_spec(LMC)["outputs"]["inference_glob"])


def test_lmc_evaluation_takes_the_checkpoints_given_as_inference_does(tmp_path):
    """``--checkpoints#<name>`` on evaluating (train.json + evaluate.json) reaches inference.json's networks, which
    the evaluator runs: ``network`` and the inferer's base source are one network, each source holds its file."""
    published, own = lmc_checkpoints(tmp_path)
    parser = ConfigParser()
    parser.read_config([str(LMC / "configs" / name) for name in ("train.json", "evaluate.json")])
    parser.update(
        {
            **load_spec(LMC)["overrides"],
            **published,
            "device": "cpu",
            "bundle_root": str(tmp_path),
            "inference#config_file": str(LMC / "configs" / "inference.json"),
        }
    )
    sources = parser.get_parsed_content("validate#inferer").sources
    assert sources["base"]["network"] is parser.get_parsed_content("network")
    for name in ("base", "actin", "tubulin"):
        assert_holds(sources[name]["network"], Path(own[f"checkpoints#{name}"]), name)
    assert {name: source.get("inferer") is not None for name, source in sources.items()} == {
        "base": True,
        "actin": False,
        "tubulin": False,
    }  # test-time augmentation on the base model only


def test_dsb_inference_on_the_published_checkpoint_format(tmp_path):
    """As microscopy-with-ml saves its model: a bare state dict (its network ends in a sigmoid, ours gives
    logits and the post-processing applies the sigmoid; neither has parameters) whose two outputs are (split
    lines, nucleus), the reverse of the bundle's: ``checkpoint_channels [1, 0]`` reads them."""
    bundle = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"
    dataset = synthetic(bundle, tmp_path)
    state = random_smp_unet(SMALL, 3, 2, "sigmoid").state_dict()
    torch.save(state, tmp_path / "model.pth")
    # the bundle's own checkpoint of the same network, its head's two output channels in the bundle's order
    swapped = {name: value[[1, 0]] if name.startswith("segmentation_head.") else value for name, value in state.items()}
    own = as_own_checkpoint(swapped, EfficientNetUNet(SMALL, 3, 2), tmp_path / "model.pt")
    got = infer(
        bundle,
        dataset,
        tmp_path / "published" / "out",
        {"ckpt_path": str(tmp_path / "model.pth"), "checkpoint_channels": [1, 0]},
    )
    expected = infer(bundle, dataset, tmp_path / "own" / "out", {"ckpt_path": str(own)})
    pattern = load_spec(bundle)["outputs"]["inference_glob"]
    assert_same_outputs(got, expected, pattern)
    assert len(list(got.glob(pattern))) == len(list((dataset / "images").iterdir()))
    # read in the bundle's order, the published file's channels give other labels
    misread = infer(bundle, dataset, tmp_path / "misread" / "out", {"ckpt_path": str(tmp_path / "model.pth")})
    with pytest.raises(AssertionError):
        assert_same_outputs(misread, expected, pattern)


def test_a_file_of_another_network_is_refused_naming_it(tmp_path):
    bundle = REPO / "bundles" / "dsb_nuclei_watershed_segmentation"
    lmc_like = random_smp_unet(SMALL, 1, 4, "sigmoid")  # 1 input channel, 4 outputs
    torch.save(lmc_like.state_dict(), tmp_path / "lmc_like.pth")
    with pytest.raises(AssertionError, match=r"lmc_like\.pth.*another model size"):
        infer(bundle, synthetic(bundle, tmp_path), tmp_path / "out", {"ckpt_path": str(tmp_path / "lmc_like.pth")})
