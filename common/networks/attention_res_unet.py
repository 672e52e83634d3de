"""Attention Residual U-Net of the Bug Hunters entry to the Adipocyte Cell Imaging Challenge (2D image regression).

Layers as in the team's TensorFlow ``model.py``: pre-activation units (batch norm, LeakyReLU, 3x3 convolution),
residual blocks whose shortcut is a 1x1 convolution and batch norm, four stride-2 encoder blocks, a two-unit
bridge, and four decoder levels that upsample (nearest), gate, concatenate and apply a residual block; the
head is a 1x1 convolution followed by LeakyReLU. With the published widths (64, 128, 256, 512, 512) it has
34,931,141 parameters and 22,656 batch-norm statistics, the figures of the team's report.

Attention gate wiring (``gate``): in the original code the gate's sigmoid coefficient, computed from the
encoder skip and the upsampled decoder features, multiplies the *upsampled decoder features*, and the decoder
concatenates ``[upsampled, gated upsampled]``; encoder features reach the decoder only through the
one-channel coefficient (``gate="decoder"``, the default). ``gate="skip"`` wires the gate as Oktay et al.
(2018) describe it: the coefficient multiplies the encoder skip and the decoder concatenates
``[upsampled, gated skip]``.

Initialisation (``init``): ``"keras"`` (the default, as the original trained) draws every convolution's weights
from Glorot's uniform distribution, U(-b, b) with b = sqrt(6 / (fan_in + fan_out)) and fan = channels x kernel
area, and sets its bias to zero, Keras' ``Conv2D`` defaults; batch norm starts at weight 1, bias 0, running mean 0
and variance 1 in Keras and PyTorch alike. ``"torch"`` keeps PyTorch's default (Kaiming-uniform) initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["AttentionGate", "AttentionResUNet", "PreActivationConv", "ResidualBlock", "init_like_keras"]


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    """Batch norm with Keras' defaults (momentum 0.99 in Keras' convention), as the original trained with."""
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def init_like_keras(network: nn.Module) -> nn.Module:
    """Keras' default initialisation of every convolution of ``network``, in place: Glorot uniform, zero bias."""
    for module in network.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return network


class PreActivationConv(nn.Sequential):
    """(B, C_in, H, W) -> (B, C_out, H / stride, W / stride): batch norm, LeakyReLU, 3x3 convolution."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, negative_slope: float = 0.3) -> None:
        super().__init__(
            _batch_norm(in_channels),
            nn.LeakyReLU(negative_slope),
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
        )


class ResidualBlock(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H / stride, W / stride): two 3x3 units plus a projection shortcut.

    The residual path is two :class:`PreActivationConv` units (the first one strided); the shortcut is a
    1x1 convolution of the same stride followed by batch norm. ``preactivate_input=False`` makes the first
    unit a plain 3x3 convolution (the network's stem, applied to raw pixels).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, negative_slope: float = 0.3,
        preactivate_input: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        first = (
            PreActivationConv(in_channels, out_channels, stride, negative_slope)
            if preactivate_input
            else nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        )
        self.residual = nn.Sequential(first, PreActivationConv(out_channels, out_channels, 1, negative_slope))
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride), _batch_norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class AttentionGate(nn.Module):
    """Additive attention gate: ``x * sigmoid(psi(relu(W_x x + W_g g)))`` with 1x1 convolutions.

    Args:
        x_channels: channels of the gated features ``x`` (B, C_x, H, W).
        g_channels: channels of the gating features ``g`` (B, C_g, H, W), same H, W as ``x``.
        inter_channels: channels of the two projections that are added.

    Returns from ``forward``: the gated ``x``, (B, C_x, H, W); :meth:`coefficients` gives the (B, 1, H, W) map.
    """

    def __init__(self, x_channels: int, g_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.project_x = nn.Conv2d(x_channels, inter_channels, 1)
        self.project_g = nn.Conv2d(g_channels, inter_channels, 1)
        self.psi = nn.Conv2d(inter_channels, 1, 1)

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) attention coefficients in (0, 1)."""
        return torch.sigmoid(self.psi(torch.relu(self.project_x(x) + self.project_g(g))))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * self.coefficients(x, g)


class _DecoderLevel(nn.Module):
    """Upsample by 2, gate, concatenate [upsampled, gated], residual block."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, gate_skip: bool, negative_slope: float):
        super().__init__()
        self.gate_skip = gate_skip
        self.upsample = nn.Upsample(scale_factor=2.0, mode="nearest")
        if gate_skip:
            self.gate = AttentionGate(skip_channels, in_channels, out_channels)
            concatenated = in_channels + skip_channels
        else:
            self.gate = AttentionGate(in_channels, skip_channels, out_channels)
            concatenated = 2 * in_channels
        self.block = ResidualBlock(concatenated, out_channels, 1, negative_slope)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.upsample(x)
        gated = self.gate(skip, up) if self.gate_skip else self.gate(up, skip)
        return self.block(torch.cat([up, gated], dim=1))


class AttentionResUNet(nn.Module):
    """(B, C_in, H, W) -> (B, C_out, H, W) Attention Residual U-Net; H and W multiples of ``2 ** (levels - 1)``.

    Args:
        in_channels: input channels (1: the maximum-intensity projection of the brightfield stack).
        out_channels: output channels (1: one fluorescence channel per network, as published).
        channels: feature maps of the stem and of each stride-2 encoder block; the bridge keeps the last, the
            decoder levels end with ``channels[-1], channels[-2], ..., channels[1]``.
        negative_slope: of every LeakyReLU (0.3, Keras' default, as in the original).
        gate: ``"decoder"`` (the original wiring) or ``"skip"`` (Oktay et al.); see the module docstring.
        init: ``"keras"`` (Glorot uniform, zero bias: the original's) or ``"torch"`` (PyTorch's defaults).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        negative_slope: float = 0.3,
        gate: str = "decoder",
        init: str = "keras",
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(f"channels: expected at least two positive widths, got {channels}.")
        if gate not in ("decoder", "skip"):
            raise ValueError(f"gate: expected 'decoder' (original wiring) or 'skip' (Oktay et al.), got {gate!r}.")
        if init not in ("keras", "torch"):
            raise ValueError(f"init: expected 'keras' (the original's) or 'torch' (PyTorch's defaults), got {init!r}.")
        self.multiple = 2 ** (len(channels) - 1)
        self.stem = ResidualBlock(in_channels, channels[0], 1, negative_slope, preactivate_input=False)
        self.encoder = nn.ModuleList(
            ResidualBlock(c_in, c_out, 2, negative_slope) for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        self.bridge = nn.Sequential(
            PreActivationConv(channels[-1], channels[-1], 1, negative_slope),
            PreActivationConv(channels[-1], channels[-1], 1, negative_slope),
        )
        skips, outs = channels[-2::-1], channels[:0:-1]  # (512, 256, 128, 64) and (512, 512, 256, 128) as published
        ins = [channels[-1]] + outs[:-1]
        self.decoder = nn.ModuleList(
            _DecoderLevel(c_in, c_skip, c_out, gate == "skip", negative_slope)
            for c_in, c_skip, c_out in zip(ins, skips, outs)
        )
        self.head = nn.Sequential(nn.Conv2d(outs[-1], out_channels, 1), nn.LeakyReLU(negative_slope))
        if init == "keras":
            init_like_keras(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.multiple != 0 or x.shape[-1] % self.multiple != 0:
            raise ValueError(
                "AttentionResUNet: input (H, W) = (" + str(x.shape[-2]) + ", " + str(x.shape[-1])
                + ") must be multiples of " + str(self.multiple) + "."
            )  # fmt: skip
        skips: list[torch.Tensor] = []
        x = self.stem(x)
        for block in self.encoder:
            skips.append(x)
            x = block(x)
        x = self.bridge(x)
        for index, level in enumerate(self.decoder):
            x = level(x, skips[len(skips) - 1 - index])
        return self.head(x)
