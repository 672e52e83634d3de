"""MA-Net decoder (Fan et al. 2020) as MEDIAR configures it: position attention at the centre, multi-scale
fusion attention on the skip connections, plain up-sampling blocks where there is no skip, Mish activations.

Feature maps are (B, C, H, W); each block doubles H and W (nearest neighbour).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

__all__ = ["PositionAttention", "ChannelGate", "FusionAttentionBlock", "UpBlock", "MANetDecoder"]


def conv_norm_mish(in_channels: int, out_channels: int, kernel_size: int = 3) -> Convolution:
    """Convolution (no bias), batch norm, Mish."""
    return Convolution(2, in_channels, out_channels, kernel_size=kernel_size, act="mish", norm="batch", bias=False)


class PositionAttention(nn.Module):
    """Position attention block (PAB) of MA-Net: (B, C, H, W) -> (B, C, H, W).

    Attention between all positions from 1x1 query and key projections to ``attention_channels``, applied to a
    3x3 value projection, added to the input and followed by a 3x3 convolution. As in segmentation_models_pytorch's
    MA-Net, which MEDIAR was trained with, the softmax runs over the whole (HW x HW) map of an image rather than
    over each row, and the attended (B, HW, C) values are reshaped, not transposed, to (B, C, H, W); both are
    kept so that MEDIAR's published weights compute what they were trained to.
    """

    def __init__(self, channels: int, attention_channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, attention_channels, 1)
        self.key = nn.Conv2d(channels, attention_channels, 1)
        self.value = nn.Conv2d(channels, channels, 3, padding=1)
        self.out = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # (B, HW, P)
        key = self.key(x).flatten(2)  # (B, P, HW)
        value = self.value(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        attention = torch.softmax(torch.bmm(query, key).flatten(1), dim=1).view(b, h * w, h * w)
        context = torch.bmm(attention, value).reshape(b, c, h, w)
        return self.out(x + context)


class ChannelGate(nn.Module):
    """Squeeze-and-excitation weights: (B, C, H, W) -> (B, C, 1, 1) in (0, 1)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        reduced = max(1, channels // reduction)
        self.squeeze = nn.Conv2d(channels, reduced, 1)
        self.act = nn.Mish()
        self.excite = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.excite(self.act(self.squeeze(F.adaptive_avg_pool2d(x, 1)))))


class FusionAttentionBlock(nn.Module):
    """Multi-scale fusion attention block (MFAB): (B, C_in, H, W) and skip (B, C_skip, 2H, 2W) -> (B, C_out, 2H, 2W).

    The deep features are brought to the skip's width (3x3 then 1x1 convolution), up-sampled, re-weighted per
    channel by the sum of two squeeze-and-excitation gates (one of each input), concatenated with the skip and
    fused by two 3x3 convolutions.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.high_conv = nn.Sequential(
            conv_norm_mish(in_channels, in_channels, 3), conv_norm_mish(in_channels, skip_channels, 1)
        )
        self.high_gate = ChannelGate(skip_channels, reduction)
        self.skip_gate = ChannelGate(skip_channels, reduction)
        self.conv1 = conv_norm_mish(2 * skip_channels, out_channels)
        self.conv2 = conv_norm_mish(out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.high_conv(x), scale_factor=2.0, mode="nearest")
        x = x * (self.high_gate(x) + self.skip_gate(skip))
        return self.conv2(self.conv1(torch.cat([x, skip], dim=1)))


class UpBlock(nn.Module):
    """Up-sampling and two 3x3 convolutions, no skip: (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = conv_norm_mish(in_channels, out_channels)
        self.conv2 = conv_norm_mish(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(F.interpolate(x, scale_factor=2.0, mode="nearest")))


class MANetDecoder(nn.Module):
    """MA-Net decoder over encoder features, deepest last: [(B, C_k, H / 2^(k+2), W / 2^(k+2)), k = 0..3] ->
    (B, decoder_channels[-1], H, W) for the four features of an encoder at strides 4 to 32.

    The deepest feature goes through :class:`PositionAttention`, then one :class:`FusionAttentionBlock` per
    shallower feature (deepest first) and :class:`UpBlock` s for the remaining channels of
    ``decoder_channels`` (two, back to full resolution, for MEDIAR's five).

    Args:
        encoder_channels: channels of the encoder features, shallowest first.
        decoder_channels: output channels of the blocks (MEDIAR: 1024, 512, 256, 128, 64).
        attention_channels: query/key width of the position attention (MEDIAR: 256).
        reduction: squeeze-and-excitation reduction of the fusion blocks.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        decoder_channels: Sequence[int] = (1024, 512, 256, 128, 64),
        attention_channels: int = 256,
        reduction: int = 16,
    ) -> None:
        super().__init__()
        skips = list(encoder_channels[:-1])[::-1]
        if len(decoder_channels) < len(skips):
            raise ValueError(f"decoder_channels: expected at least {len(skips)} blocks, got {list(decoder_channels)}.")
        self.centre = PositionAttention(encoder_channels[-1], attention_channels)
        inputs = [encoder_channels[-1]] + list(decoder_channels[:-1])
        self.fusion = nn.ModuleList(
            [FusionAttentionBlock(i, s, o, reduction) for i, s, o in zip(inputs, skips, decoder_channels)]
        )
        self.up = nn.ModuleList([UpBlock(i, o) for i, o in zip(inputs[len(skips) :], decoder_channels[len(skips) :])])
        self.apply(_init_weights)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.centre(features[-1])
        depth = len(features)
        for index, block in enumerate(self.fusion):
            x = block(x, features[depth - 2 - index])
        for block in self.up:
            x = block(x)
        return x


def _init_weights(module: nn.Module) -> None:
    """He-uniform (fan-in) convolutions, unit batch norms: segmentation_models_pytorch's decoder initialisation."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_uniform_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
