"""EfficientNetUNet against segmentation_models_pytorch's Unet (the network LMC and DSB published), with the
checkpoints saved as each original saves them."""

import monai.networks.nets.efficientnet as monai_efficientnet
import pytest
import torch
from monai.networks.nets import FlexibleUNet

from common.networks import SMP_FEATURE_BLOCKS, EfficientNetUNet, load_pretrained
from common.networks.efficientnet_unet import adapt_input_channels
from tests.support.smp_reference import import_smp, random_smp_unet

# backbone, in, out, activation, how the original saved its weights
LMC = ("efficientnet-b7", 1, 4, "sigmoid", "lmc")  # jfozard/LMC train.py: {"model_state_dict", "optimizer_state_dict"}
DSB = ("efficientnet-b3", 3, 2, "sigmoid", "dsb")  # microscopy-with-ml training.py: model.state_dict()
SMALL = ("efficientnet-b0", 1, 4, "sigmoid", "lmc")


def save_as_original(network, path, style):
    if style == "lmc":
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
        torch.save({"model_state_dict": network.state_dict(), "optimizer_state_dict": optimizer.state_dict()}, path)
    else:
        torch.save(network.state_dict(), path)
    return path


@pytest.mark.parametrize("case", [SMALL, DSB, LMC], ids=["b0", "dsb_b3", "lmc_b7"])
def test_published_checkpoint_loads_and_gives_smp_outputs(case, tmp_path):
    backbone, in_channels, out_channels, activation, style = case
    reference = random_smp_unet(backbone, in_channels, out_channels, activation)
    path = save_as_original(reference, tmp_path / "published.pth", style)
    ours = load_pretrained(EfficientNetUNet(backbone, in_channels, out_channels, activation=activation), path).eval()
    x = torch.randn(2, in_channels, 64, 96)
    with torch.no_grad():
        assert (ours(x) - reference(x)).abs().max() < 1e-4
    # every parameter and buffer came from the file (load_pretrained refuses missing or unexpected keys)
    assert len(ours.state_dict()) == len(reference.state_dict())


def test_fine_tuning_can_start_from_a_published_checkpoint_through_a_parallel_wrapper(tmp_path):
    """LMC's init_checkpoint loads into the training network, wrapped (DistributedDataParallel) or not."""
    reference = random_smp_unet(*SMALL[:4])
    path = save_as_original(reference, tmp_path / "model_and_optimizer_140.pth", "lmc")
    wrapped = torch.nn.DataParallel(EfficientNetUNet(*SMALL[:3], activation="sigmoid"))
    assert load_pretrained(wrapped, str(path)) is wrapped
    network = wrapped.module.eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert (network(x) - reference(x)).abs().max() < 1e-4


def test_parameter_counts_are_smps():
    counts = {}
    for backbone, in_channels, out_channels, activation, _ in (LMC, DSB):
        reference = random_smp_unet(backbone, in_channels, out_channels, activation)
        ours = EfficientNetUNet(backbone, in_channels, out_channels, activation=activation)
        counts[backbone] = sum(p.numel() for p in ours.parameters())
        assert counts[backbone] == sum(p.numel() for p in reference.parameters())
    assert round(counts["efficientnet-b7"] / 1e6, 2) == 67.09 and round(counts["efficientnet-b3"] / 1e6, 2) == 13.16


def test_feature_taps_are_smps():
    encoders = import_smp().encoders.efficient_net_encoders
    assert {name: tuple(encoders[name]["params"]["out_indexes"]) for name in SMP_FEATURE_BLOCKS} == SMP_FEATURE_BLOCKS
    ours = EfficientNetUNet("efficientnet-b3", 3, 2)
    assert ours.encoder.out_channels == encoders["efficientnet-b3"]["params"]["out_channels"][1:]


@pytest.mark.parametrize("in_channels", [1, 2, 3, 4])
def test_stem_adaptation_is_smps(in_channels):
    patch_first_conv = import_smp().encoders._utils.patch_first_conv
    conv = torch.nn.Conv2d(3, 8, 3, bias=False)
    rgb = conv.weight.detach().clone()
    patch_first_conv(torch.nn.Sequential(conv), in_channels, pretrained=True)
    torch.testing.assert_close(adapt_input_channels(rgb, in_channels), conv.weight.detach())


def test_pretrained_grey_encoder_starts_from_the_summed_imagenet_stem(monkeypatch):
    """pretrained with one channel: MONAI's RGB weights are loaded (no download here), then the stem adapted."""
    rgb_stem = torch.randn(32, 3, 3, 3)

    def fake_imagenet(model, arch, progress, adv_prop):
        assert arch == "efficientnet-b0" and model._conv_stem.in_channels == 3
        model._conv_stem.weight.data.copy_(rgb_stem)

    monkeypatch.setattr(monai_efficientnet, "_load_state_dict", fake_imagenet)
    network = EfficientNetUNet("efficientnet-b0", in_channels=1, out_channels=4, pretrained=True)
    torch.testing.assert_close(network.encoder._conv_stem.weight.detach(), rgb_stem.sum(1, keepdim=True))


def test_every_trainable_parameter_gets_a_gradient():
    """Distributed training needs it: the unused EfficientNet head is frozen."""
    network = EfficientNetUNet("efficientnet-b0", 1, 4, activation="sigmoid")
    network(torch.randn(2, 1, 64, 64)).mean().backward()
    idle = [name for name, p in network.named_parameters() if p.requires_grad and p.grad is None]
    frozen = {name.split(".")[1] for name, p in network.named_parameters() if not p.requires_grad}
    assert idle == [] and frozen == {"_conv_head", "_bn1"}


def test_own_checkpoint_loads_and_other_files_are_refused_naming_them(tmp_path):
    network = EfficientNetUNet("efficientnet-b0", 1, 4)
    torch.save({"model": network.state_dict()}, tmp_path / "model.pt")  # CheckpointSaver's format
    loaded = load_pretrained(EfficientNetUNet("efficientnet-b0", 1, 4), tmp_path / "model.pt")
    torch.testing.assert_close(loaded.state_dict(), network.state_dict())

    reference = random_smp_unet("efficientnet-b1", 1, 4, None)  # another encoder size
    save_as_original(reference, tmp_path / "b1.pth", "dsb")
    with pytest.raises((KeyError, ValueError), match="b1.pth"):
        load_pretrained(EfficientNetUNet("efficientnet-b0", 1, 4), tmp_path / "b1.pth")

    flexible = FlexibleUNet(1, 4, "efficientnet-b0", pretrained=False)  # another architecture
    torch.save(flexible.state_dict(), tmp_path / "flexible.pt")
    with pytest.raises(KeyError, match="flexible.pt.*unexpected architecture"):
        load_pretrained(EfficientNetUNet("efficientnet-b0", 1, 4), tmp_path / "flexible.pt")


def test_input_size_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match="divisible by 32"):
        EfficientNetUNet("efficientnet-b0", 1, 1)(torch.zeros(1, 1, 48, 64))
