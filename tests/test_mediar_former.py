"""MEDIAR-Former: shapes, TorchScript, published weight files (ImageNet MiT, MEDIAR checkpoints), ensembles."""

import re

import pytest
import torch

from common.networks import (
    AverageEnsemble,
    MEDIARFormer,
    MixTransformer,
    ensemble_from_checkpoints,
    load_pretrained,
)

SMALL = dict(encoder="mit_b0", decoder_channels=(32, 32, 16, 16, 16), attention_channels=8)


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return MEDIARFormer(**SMALL).eval()


def test_output_is_flows_then_cellprob_at_input_size(network):
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        y = network(x)
    assert y.shape == (2, 3, 64, 96) and torch.isfinite(y).all()
    with torch.no_grad():  # the two heads are separate: channels 0-1 come from the flow head only
        features = network.decoder(network.encoder(x))
        torch.testing.assert_close(y[:, :2], network.flow_head(features))
        torch.testing.assert_close(y[:, 2:], network.cellprob_head(features))


def test_encoder_sizes_and_strides():
    x = torch.rand(1, 3, 64, 64)
    b0 = MixTransformer("mit_b0", drop_path_rate=0.0)
    assert [f.shape[1:] for f in b0(x)] == [(32, 16, 16), (64, 8, 8), (160, 4, 4), (256, 2, 2)]
    assert b0.out_channels == [32, 64, 160, 256] and [len(stage.blocks) for stage in b0.stages] == [2, 2, 2, 2]
    with pytest.raises(ValueError, match="unknown MiT size 'mit_b9'"):
        MixTransformer("mit_b9")


def test_sizes_not_divisible_by_32_are_refused(network):
    with pytest.raises(ValueError, match="divisible by 32"):
        network(torch.rand(1, 3, 48, 64))


def test_torchscript_equals_eager(network):
    x = torch.rand(1, 3, 64, 64)
    scripted = torch.jit.script(network)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network(x))


# ------------------------------------------------------------------------------------------ published weights
# Key names as SegFormer's ImageNet files and MEDIAR's checkpoints spell them, written out here from the
# published architecture, independently of the renaming rules under test.


def published_mit_keys(widths=(32, 64, 160, 256), depths=(2, 2, 2, 2), ratios=(8, 4, 2, 1), in_channels=3):
    """{published name: shape} of an ImageNet MiT file (B0 by default), classifier head included."""
    keys, previous = {}, in_channels
    for i, (w, depth, ratio) in enumerate(zip(widths, depths, ratios), start=1):
        k = 7 if i == 1 else 3
        keys.update(
            {
                f"patch_embed{i}.proj.weight": (w, previous, k, k),
                f"patch_embed{i}.proj.bias": (w,),
                f"patch_embed{i}.norm.weight": (w,),
                f"patch_embed{i}.norm.bias": (w,),
            }
        )
        for j in range(depth):
            b = f"block{i}.{j}."
            keys.update(
                {
                    b + "norm1.weight": (w,),
                    b + "norm1.bias": (w,),
                    b + "attn.q.weight": (w, w),
                    b + "attn.q.bias": (w,),
                    b + "attn.kv.weight": (2 * w, w),
                    b + "attn.kv.bias": (2 * w,),
                    b + "attn.proj.weight": (w, w),
                    b + "attn.proj.bias": (w,),
                    b + "norm2.weight": (w,),
                    b + "norm2.bias": (w,),
                    b + "mlp.fc1.weight": (4 * w, w),
                    b + "mlp.fc1.bias": (4 * w,),
                    b + "mlp.dwconv.dwconv.weight": (4 * w, 1, 3, 3),
                    b + "mlp.dwconv.dwconv.bias": (4 * w,),
                    b + "mlp.fc2.weight": (w, 4 * w),
                    b + "mlp.fc2.bias": (w,),
                }
            )
            if ratio > 1:
                keys.update(
                    {
                        b + "attn.sr.weight": (w, w, ratio, ratio),
                        b + "attn.sr.bias": (w,),
                        b + "attn.norm.weight": (w,),
                        b + "attn.norm.bias": (w,),
                    }
                )
        keys.update({f"norm{i}.weight": (w,), f"norm{i}.bias": (w,)})
        previous = w
    keys.update({"head.weight": (1000, widths[-1]), "head.bias": (1000,)})
    return keys


def random_state(shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}


def test_imagenet_mit_file_loads_into_the_encoder(tmp_path):
    published = random_state(published_mit_keys())
    torch.save({"state_dict": published}, tmp_path / "mit_b0.pth")  # wrapped, as some releases are
    encoder = load_pretrained(MixTransformer("mit_b0"), tmp_path / "mit_b0.pth")
    same = {
        "patch_embed1.proj.weight": encoder.stages[0].embed.proj.weight,
        "patch_embed3.norm.bias": encoder.stages[2].embed.norm.bias,
        "block1.0.attn.sr.weight": encoder.stages[0].blocks[0].attn.reduce.weight,
        "block1.1.attn.norm.weight": encoder.stages[0].blocks[1].attn.reduce_norm.weight,
        "block2.1.attn.kv.weight": encoder.stages[1].blocks[1].attn.kv.weight,
        "block4.0.attn.q.bias": encoder.stages[3].blocks[0].attn.q.bias,
        "block3.1.norm1.weight": encoder.stages[2].blocks[1].attn_norm.weight,
        "block3.1.norm2.weight": encoder.stages[2].blocks[1].ffn_norm.weight,
        "block3.0.mlp.dwconv.dwconv.weight": encoder.stages[2].blocks[0].ffn.dwconv.weight,
        "block4.1.mlp.fc2.weight": encoder.stages[3].blocks[1].ffn.fc2.weight,
        "norm4.weight": encoder.stages[3].norm.weight,
    }
    for name, parameter in same.items():
        assert torch.equal(parameter.detach(), published[name]), name
    loaded = sum(p.numel() for p in encoder.parameters())
    assert loaded == sum(t.numel() for n, t in published.items() if not n.startswith("head."))


def test_weights_of_another_size_or_architecture_are_refused(tmp_path):
    torch.save(random_state(published_mit_keys(widths=(64, 128, 320, 512))), tmp_path / "mit_b1.pth")
    with pytest.raises(
        ValueError,
        match="mit_b1.pth: does not load into MixTransformer.*as SegFormer's ImageNet MiT "
        "weights .*: weights of another model size",
    ):
        load_pretrained(MixTransformer("mit_b0"), tmp_path / "mit_b1.pth")
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "resnet.pth")
    with pytest.raises(KeyError, match="resnet.pth: does not load.*1 keys of an unexpected architecture"):
        load_pretrained(MixTransformer("mit_b0"), tmp_path / "resnet.pth")
    with pytest.raises(FileNotFoundError, match="absent.pth: weights file not found"):
        MEDIARFormer(**SMALL, encoder_weights=tmp_path / "absent.pth")


#: our layer names -> MEDIAR's: a MONAI Convolution (conv, adn.N) is an smp Conv2dReLU (0, 1), a squeeze-excite
#: gate (squeeze, excite) an smp SE block (1, 3), a head (conv1, norm, conv2) a DeepSegmentationHead (0, 2, 3)
LAYER_PARTS = {
    "convolution": ((r"conv\.", "0."), (r"adn\.N\.", "1.")),
    "gate": ((r"squeeze\.", "1."), (r"excite\.", "3.")),
    "head": ((r"conv1\.", "0."), (r"norm\.", "2."), (r"conv2\.", "3.")),
}
#: our decoder and head (name, kind) -> MEDIAR's (segmentation_models_pytorch MAnet with two DeepSegmentationHeads)
OURS_TO_MEDIAR_LAYERS = [
    (r"decoder\.fusion\.(\d)\.high_conv\.(\d)\.", r"decoder.blocks.\1.hl_conv.\2.", "convolution"),
    (r"decoder\.fusion\.(\d)\.high_gate\.", r"decoder.blocks.\1.SE_hl.", "gate"),
    (r"decoder\.fusion\.(\d)\.skip_gate\.", r"decoder.blocks.\1.SE_ll.", "gate"),
    (r"decoder\.fusion\.(\d)\.(conv\d)\.", r"decoder.blocks.\1.\2.", "convolution"),
    (r"decoder\.up\.0\.(conv\d)\.", r"decoder.blocks.3.\1.", "convolution"),
    (r"decoder\.up\.1\.(conv\d)\.", r"decoder.blocks.4.\1.", "convolution"),
    (r"flow_head\.", "gradflow_head.", "head"),
    (r"cellprob_head\.", "cellprob_head.", "head"),
]
#: (pattern of our parameter names, MEDIAR's name as a replacement)
OURS_TO_MEDIAR = [
    (r"decoder\.centre\.query\.", "decoder.center.center_conv."),
    (r"decoder\.centre\.key\.", "decoder.center.top_conv."),
    (r"decoder\.centre\.value\.", "decoder.center.bottom_conv."),
    (r"decoder\.centre\.out\.", "decoder.center.out_conv."),
    *(
        (ours + our_part, mediar + mediar_part)
        for ours, mediar, kind in OURS_TO_MEDIAR_LAYERS
        for our_part, mediar_part in LAYER_PARTS[kind]
    ),
]


def mediar_name(ours: str) -> str:
    for pattern, replacement in OURS_TO_MEDIAR:
        new, count = re.subn("^" + pattern, replacement, ours)
        if count:
            return new
    raise AssertionError(f"no published name for {ours}")


def test_mediar_checkpoint_loads_with_every_parameter_in_place(tmp_path):
    target = MEDIARFormer(**SMALL)
    published = {"encoder." + k: v for k, v in random_state(published_mit_keys()).items() if not k.startswith("head.")}
    ours_decoder = {k: v for k, v in target.state_dict().items() if not k.startswith("encoder.")}
    generator = torch.Generator().manual_seed(1)
    for name, value in ours_decoder.items():
        published[mediar_name(name)] = torch.randint(0, 9, value.shape, generator=generator).to(value.dtype)
    for name in (
        "decoder.center.top_conv.weight",
        "decoder.blocks.0.hl_conv.0.0.weight",
        "decoder.blocks.2.SE_ll.3.bias",
        "decoder.blocks.4.conv2.1.running_var",
        "cellprob_head.3.bias",
        "gradflow_head.2.num_batches_tracked",
    ):
        assert name in published  # the naming of MEDIAR's files
    torch.save(published, tmp_path / "from_phase1.pth")
    load_pretrained(target, tmp_path / "from_phase1.pth")
    state = target.state_dict()
    for name, value in state.items():
        source = published[mediar_name(name)] if not name.startswith("encoder.") else None
        if source is not None:
            assert torch.equal(value, source), name
    assert torch.equal(state["encoder.stages.1.blocks.0.attn.kv.weight"], published["encoder.block2.0.attn.kv.weight"])
    # the bundle's inference and evaluation load MEDIAR's files the same way
    member = ensemble_from_checkpoints(MEDIARFormer(**SMALL), [tmp_path / "from_phase1.pth"])
    assert all(torch.equal(member.state_dict()[k], v) for k, v in state.items())


def test_initial_weights_from_our_checkpoints_or_mediars(tmp_path):
    torch.manual_seed(0)
    source = MEDIARFormer(**SMALL)
    torch.save(source.state_dict(), tmp_path / "ours.pt")
    torch.save(
        {mediar_name(k) if not k.startswith("encoder.") else k: v for k, v in source.state_dict().items()},
        tmp_path / "decoder_only_renamed.pt",
    )  # neither naming throughout: refused
    ours = load_pretrained(MEDIARFormer(**SMALL), tmp_path / "ours.pt")
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), source.state_dict().values()))
    with pytest.raises(KeyError, match="decoder_only_renamed.pt"):
        load_pretrained(MEDIARFormer(**SMALL), tmp_path / "decoder_only_renamed.pt")
    untouched = MEDIARFormer(**SMALL)
    assert load_pretrained(untouched, None) is untouched


def test_average_ensemble_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    first, second = MEDIARFormer(**SMALL).eval(), MEDIARFormer(**SMALL).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(AverageEnsemble([first, second])(x), (first(x) + second(x)) / 2)
    torch.save(first.state_dict(), tmp_path / "a.pt")
    torch.save({"model": second.state_dict()}, tmp_path / "b.pt")
    template = MEDIARFormer(**SMALL).eval()
    single = ensemble_from_checkpoints(template, str(tmp_path / "a.pt"))
    pair = ensemble_from_checkpoints(template, [tmp_path / "a.pt", tmp_path / "b.pt"]).eval()
    assert isinstance(pair, AverageEnsemble) and not isinstance(single, AverageEnsemble)
    with torch.no_grad():
        torch.testing.assert_close(single(x), first(x))
        torch.testing.assert_close(pair(x), (first(x) + second(x)) / 2)
    convs = AverageEnsemble([torch.nn.Conv2d(3, 3, 1), torch.nn.Conv2d(3, 3, 1)])
    torch.testing.assert_close(torch.jit.script(convs)(x), convs(x))
    torch.save(
        MEDIARFormer(encoder="mit_b0", decoder_channels=(16, 16, 16, 16, 16), attention_channels=8).state_dict(),
        tmp_path / "c.pt",
    )
    with pytest.raises(ValueError, match="c.pt: does not load into MEDIARFormer.*another model size"):
        ensemble_from_checkpoints(template, [tmp_path / "c.pt"])
