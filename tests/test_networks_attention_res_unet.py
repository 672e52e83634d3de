"""Attention Residual U-Net: the published size, shapes, the attention gate, gradients, TorchScript."""

import math

import pytest
import torch

from common.networks import AttentionGate, AttentionResUNet

SMALL = {"channels": (8, 16, 16, 32)}  # three stride-2 blocks: inputs are multiples of 8


def test_published_widths_give_the_parameter_count_of_the_team_report():
    """The report gives 34,931,141 trainable parameters and 22,656 non-trainable ones (batch-norm statistics)."""
    network = AttentionResUNet()
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    statistics = sum(b.numel() for name, b in network.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert (trainable, statistics) == (34_931_141, 22_656)


@pytest.mark.parametrize("gate", ["decoder", "skip"])
def test_output_has_the_input_size_and_inputs_must_be_multiples(gate):
    network = AttentionResUNet(in_channels=2, out_channels=3, gate=gate, **SMALL).eval()
    with torch.no_grad():
        assert network(torch.rand(2, 2, 24, 40)).shape == (2, 3, 24, 40)
    with pytest.raises(ValueError, match=r"\(H, W\) = \(24, 36\) must be multiples of 8"):
        network(torch.rand(1, 2, 24, 36))
    with pytest.raises(ValueError, match="gate"):
        AttentionResUNet(gate="both")


def test_attention_gate_shapes_and_values():
    torch.manual_seed(0)
    gate = AttentionGate(x_channels=6, g_channels=4, inter_channels=5)
    x, g = torch.randn(2, 6, 10, 12), torch.randn(2, 4, 10, 12)
    coefficients = gate.coefficients(x, g)
    assert coefficients.shape == (2, 1, 10, 12)
    assert 0 < coefficients.min() and coefficients.max() < 1
    torch.testing.assert_close(gate(x, g), x * coefficients)

    # the coefficient follows its definition: sigmoid(psi(relu(W_x x + W_g g)))
    def conv1x1(conv, t):
        return torch.einsum("bchw,oc->bohw", t, conv.weight[:, :, 0, 0]) + conv.bias[:, None, None]

    by_hand = conv1x1(gate.psi, (conv1x1(gate.project_x, x) + conv1x1(gate.project_g, g)).relu())
    torch.testing.assert_close(coefficients, by_hand.sigmoid())


def test_attention_gate_passes_gradients_to_both_inputs_and_its_weights():
    torch.manual_seed(1)
    gate = AttentionGate(6, 4, 5)
    x = torch.randn(2, 6, 10, 12, requires_grad=True)
    g = torch.randn(2, 4, 10, 12, requires_grad=True)
    gate(x, g).square().sum().backward()
    for name, tensor in [("x", x), ("g", g), *gate.named_parameters()]:
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0, name


@pytest.mark.parametrize("gate", ["decoder", "skip"])
def test_every_parameter_receives_a_gradient(gate):
    torch.manual_seed(2)
    network = AttentionResUNet(gate=gate, **SMALL)
    (network(torch.rand(2, 1, 16, 16)) - torch.rand(2, 1, 16, 16)).square().mean().backward()
    silent = [name for name, p in network.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert silent == []


def test_the_gate_weighs_what_its_wiring_says():
    """Decoder wiring: the encoder skip reaches the decoder only through the one-channel coefficient; skip wiring
    concatenates the gated skip itself."""
    level = AttentionResUNet(gate="decoder", **SMALL).decoder[-1]
    assert level.gate.project_x.in_channels == level.block.residual[0][0].num_features // 2  # [up, gated up]
    level = AttentionResUNet(gate="skip", **SMALL).decoder[-1]
    assert level.gate.project_x.in_channels == SMALL["channels"][0]  # the stem's skip is gated
    assert level.block.residual[0][0].num_features == SMALL["channels"][1] + SMALL["channels"][0]


@pytest.mark.parametrize("gate", ["decoder", "skip"])
def test_torchscript_equals_eager(gate):
    torch.manual_seed(3)
    network = AttentionResUNet(gate=gate, **SMALL).eval()
    scripted = torch.jit.script(network)
    x = torch.rand(1, 1, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network(x))
    with pytest.raises(Exception, match="multiples of 8"):
        scripted(torch.rand(1, 1, 12, 16))


def test_keras_initialisation_is_glorot_uniform_with_zero_bias():
    """Keras' Conv2D default: weights U(-b, b), b = sqrt(6 / (fan_in + fan_out)), fan = channels x kernel area, bias 0;
    batch norm as Keras starts it (weight 1, bias 0, mean 0, variance 1). ``init="torch"`` keeps PyTorch's draw."""
    torch.manual_seed(4)
    network = AttentionResUNet()  # published widths: large layers make the moment checks tight
    convolutions = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convolutions) == 42  # stem 3, encoder 4 x 3, bridge 2, decoder 4 x (3 gate + 3 block), head 1
    for conv in convolutions:
        out_channels, in_channels, kh, kw = conv.weight.shape
        bound = math.sqrt(6.0 / ((in_channels + out_channels) * kh * kw))
        assert conv.weight.abs().max() <= bound and torch.all(conv.bias == 0)
        if conv.weight.numel() >= 10_000:  # uniform on (-b, b): mean 0, variance b^2 / 3, reaching the bounds
            weights = conv.weight.double()
            assert abs(float(weights.mean())) < 0.02 * bound
            assert float(weights.var()) == pytest.approx(bound**2 / 3, rel=0.03)
            assert float(weights.abs().max()) > 0.99 * bound
    for norm in (m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
        assert torch.all(norm.running_mean == 0) and torch.all(norm.running_var == 1)
        assert (norm.eps, norm.momentum) == (1e-3, 0.01)
    # PyTorch's default (Kaiming uniform, a = sqrt(5)): bound 1 / sqrt(fan_in), here below Glorot's, non-zero biases
    conv = AttentionResUNet(init="torch", **SMALL).bridge[0][2]
    fan_in = conv.weight[0].numel()
    assert conv.weight.abs().max() <= 1 / math.sqrt(fan_in) < math.sqrt(6.0 / (2 * fan_in))
    assert conv.bias.abs().sum() > 0
    with pytest.raises(ValueError, match="init"):
        AttentionResUNet(init="glorot")
