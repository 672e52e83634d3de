"""MEDIAR-Former (Lee et al. 2022): a Mix Transformer encoder, an MA-Net decoder and two heads, for cellpose-style
flows and cell probability.

Output channels ``[dy, dx, cellprob]``: flows at 5 times unit scale and the cell-probability logit, the order
MEDIAR writes them and :class:`common.transforms.FlowsToLabels` reads them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import torch
from torch import nn

from .manet import MANetDecoder
from .mix_transformer import MIT_IMAGENET_RULES, MixTransformer
from .weights import load_pretrained, register_published_format

__all__ = ["MEDIAR_CHECKPOINT_RULES", "FlowHead", "MEDIARFormer"]


class FlowHead(nn.Sequential):
    """MEDIAR's head: 3x3 convolution to half the channels, Mish, batch norm, 3x3 convolution to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels // 2, 3, padding=1)
        self.act = nn.Mish()
        self.norm = nn.BatchNorm2d(in_channels // 2)
        self.conv2 = nn.Conv2d(in_channels // 2, out_channels, 3, padding=1)


class MEDIARFormer(nn.Module):
    """MEDIAR-Former: (B, C_in, H, W) -> (B, 3, H, W) ``[dy, dx, cellprob logit]``, H and W multiples of 32.

    Args:
        encoder: MiT size, ``"mit_b5"`` as published or a smaller one (``"mit_b0"`` ... ``"mit_b4"``).
        in_channels: image channels (3: grey images are repeated, as MEDIAR does).
        decoder_channels: MA-Net block widths (published: 1024, 512, 256, 128, 64).
        attention_channels: query/key width of the decoder's position attention (published: 256).
        drop_path_rate: stochastic depth of the encoder's last block (published: 0.1).
        encoder_weights: optional file of ImageNet MiT weights of the encoder's size (SegFormer's
            ``mit_b5.pth``), loaded with :func:`common.networks.load_pretrained`.

    The encoder keeps GELU, as MEDIAR's does (its conversion to Mish only replaced ReLUs, of which MiT has
    none); decoder and heads use Mish.
    """

    def __init__(
        self,
        encoder: str = "mit_b5",
        in_channels: int = 3,
        decoder_channels: Sequence[int] = (1024, 512, 256, 128, 64),
        attention_channels: int = 256,
        drop_path_rate: float = 0.1,
        encoder_weights: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.encoder = MixTransformer(encoder, in_channels, drop_path_rate)
        if encoder_weights is not None:
            load_pretrained(self.encoder, encoder_weights)
        self.decoder = MANetDecoder(self.encoder.out_channels, decoder_channels, attention_channels)
        self.flow_head = FlowHead(decoder_channels[-1], 2)
        self.cellprob_head = FlowHead(decoder_channels[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 32 != 0 or x.shape[-1] % 32 != 0:
            raise ValueError("MEDIARFormer: expected height and width divisible by 32, got " + str(list(x.shape)))
        features = self.decoder(self.encoder(x))
        return torch.cat([self.flow_head(features), self.cellprob_head(features)], dim=1)


def _decoder_block(match: re.Match) -> str:
    """Published ``decoder.blocks.<k>``: fusion blocks 0-2, then up-sampling blocks."""
    index = int(match.group(1))
    return f"decoder.fusion.{index}" if index < 3 else f"decoder.up.{index - 3}"


_ATTENTION = {"center": "query", "top": "key", "bottom": "value", "out": "out"}
_HEAD = {"0": "conv1", "2": "norm", "3": "conv2"}


def _conv_norm_act(part: str) -> str:
    """Published ``Conv2dReLU`` children ``0`` (conv), ``1`` (batch norm) -> MONAI ``Convolution`` names."""
    return "conv." if part == "0" else "adn.N."


#: MEDIAR's checkpoints (``phase1.pth``, ``phase2.pth``, ``from_phase1.pth``, ``from_phase2.pth``, its
#: segmentation_models_pytorch MAnet) -> :class:`MEDIARFormer`. ``encoder.*`` as :data:`MIT_IMAGENET_RULES`;
#: ``decoder.center.{center,top,bottom,out}_conv`` -> ``decoder.centre.{query,key,value,out}``;
#: ``decoder.blocks.<k>`` (k < 3) -> ``decoder.fusion.<k>`` with ``hl_conv`` -> ``high_conv``, ``SE_hl`` /
#: ``SE_ll`` ``.1`` / ``.3`` -> ``high_gate`` / ``skip_gate`` ``.squeeze`` / ``.excite``;
#: ``decoder.blocks.3``, ``.4`` -> ``decoder.up.0``, ``.1``; in convolution blocks ``.0`` -> ``.conv``,
#: ``.1`` -> ``.adn.N``; ``gradflow_head`` / ``cellprob_head`` children ``0``, ``2``, ``3`` -> ``flow_head`` /
#: ``cellprob_head`` ``.conv1``, ``.norm``, ``.conv2``.
MEDIAR_CHECKPOINT_RULES = [
    *[
        (r"encoder\." + pattern, (lambda m, r=replacement: "encoder." + r(m)) if replacement else None)
        for pattern, replacement in MIT_IMAGENET_RULES
    ],
    (r"decoder\.center\.(center|top|bottom|out)_conv\.", lambda m: f"decoder.centre.{_ATTENTION[m.group(1)]}."),
    (
        r"decoder\.blocks\.(\d)\.hl_conv\.(\d)\.(\d)\.",
        lambda m: f"{_decoder_block(m)}.high_conv.{m.group(2)}.{_conv_norm_act(m.group(3))}",
    ),
    (
        r"decoder\.blocks\.(\d)\.SE_(hl|ll)\.(1|3)\.",
        lambda m: (
            f"{_decoder_block(m)}.{'high' if m.group(2) == 'hl' else 'skip'}_gate."
            f"{'squeeze' if m.group(3) == '1' else 'excite'}."
        ),
    ),
    (
        r"decoder\.blocks\.(\d)\.(conv1|conv2)\.(\d)\.",
        lambda m: f"{_decoder_block(m)}.{m.group(2)}.{_conv_norm_act(m.group(3))}",
    ),
    (
        r"(gradflow|cellprob)_head\.(0|2|3)\.",
        lambda m: f"{'flow' if m.group(1) == 'gradflow' else 'cellprob'}_head.{_HEAD[m.group(2)]}.",
    ),
]


register_published_format(
    MEDIARFormer, "MEDIAR's published checkpoints (segmentation_models_pytorch MAnet)", MEDIAR_CHECKPOINT_RULES
)
