"""Every network variant of the LIVECell bundle builds from its override file, matches the metadata's input and
output, exports to TorchScript equal to the eager network, and has the parameter count the model card states."""

import importlib.util
import re

import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, verify_net_in_out

from tests.support.bundles import REPO

BUNDLE = REPO / "bundles" / "livecell_semantic_segmentation"
CONFIGS = BUNDLE / "configs"
VARIANTS = ["unet_6l_3r", "unet_6l_0r", "unet_4l", "unet_2l", "vnet", "swin_unetr"]
#: MONAI's SwinUNETR needs einops and cannot be compiled by torch.jit.script in 2D: traced instead
TRACED = {"swin_unetr"}


def config_files(variant: str) -> list[str]:
    return [str(CONFIGS / "inference.json"), str(CONFIGS / f"{variant}.json")]


def network(variant: str) -> torch.nn.Module:
    parser = ConfigParser()
    parser.read_config(config_files(variant))
    return parser.get_parsed_content("network_def")


def needs_einops(variant: str) -> None:
    if variant == "swin_unetr" and importlib.util.find_spec("einops") is None:
        pytest.skip("MONAI's SwinUNETR needs einops (pip install einops)")


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_matches_metadata_and_exports_to_torchscript(variant, tmp_path):
    needs_einops(variant)
    verify_net_in_out(net_id="network_def", meta_file=str(CONFIGS / "metadata.json"), config_file=config_files(variant),
                      device="cpu", n=1, bundle_root=str(BUNDLE))  # fmt: skip
    torch.manual_seed(0)
    eager = network(variant).eval()
    torch.save(eager.state_dict(), tmp_path / "model.pt")
    trace = {"use_trace": True, "input_shape": [1, 1, 96, 96]} if variant in TRACED else {}
    ckpt_export(net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(tmp_path / "model.pt"),
                meta_file=str(CONFIGS / "metadata.json"), config_file=config_files(variant), bundle_root=str(tmp_path),
                **trace)  # fmt: skip
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    x = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager(x))


def test_model_card_parameter_counts_are_the_networks():
    card = (BUNDLE / "docs" / "README.md").read_text()
    stated = {
        name: int(count.replace(",", ""))
        for name, count in re.findall(r"`configs/(\w+)\.json` *\| *([\d,]+) *\|", card)
    }
    assert sorted(stated) == sorted(VARIANTS)
    for variant in VARIANTS:
        assert stated[variant] == sum(p.numel() for p in network(variant).parameters()), variant
