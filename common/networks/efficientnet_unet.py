"""U-Net on MONAI's EfficientNet encoder, wired as segmentation_models_pytorch's ``Unet`` (LMC, DSB).

MONAI's ``FlexibleUNet`` differs from smp's ``Unet`` (1x1 channel-halving convolutions, other skip sources), so
checkpoints of the methods built with smp do not load into it. :class:`EfficientNetUNet` reproduces smp's wiring
(``UnetDecoder``, smp 0.3-0.6) on :class:`monai.networks.nets.EfficientNetBNFeatures`:

- skips: the stem output (stride 2, after batch norm and swish) and the outputs of the MBConv blocks that smp
  taps for each size (:data:`SMP_FEATURE_BLOCKS`: strides 4, 8, 16, 32); no centre block;
- decoder block: nearest up-sampling to the skip's size, concatenation ``[up, skip]``, twice 3x3 convolution
  (no bias), batch norm, ReLU; the last block has no skip and up-samples to the input size;
- head: 3x3 convolution with bias, then the activation (none, sigmoid or softmax over channels).

Published smp checkpoints load with :func:`common.networks.load_pretrained`, renamed by :data:`SMP_UNET_RULES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.nets import EfficientNetBNFeatures
from torch import nn

from .weights import register_published_format

__all__ = [
    "EfficientNetUNet",
    "EfficientNetFeatures",
    "UNetDecoder",
    "SMP_FEATURE_BLOCKS",
    "SMP_UNET_RULES",
    "adapt_input_channels",
]

#: EfficientNet size -> the MBConv blocks (flat index) whose outputs smp's encoder returns, strides 4 to 32
#: (smp's ``out_indexes``; ``stage_idxs`` minus one before 0.5). All end a resolution except b0's stride-16 tap,
#: which smp takes after the first block of the 112-channel stage.
SMP_FEATURE_BLOCKS: dict[str, tuple] = {
    "efficientnet-b0": (2, 4, 8, 15),
    "efficientnet-b1": (4, 7, 15, 22),
    "efficientnet-b2": (4, 7, 15, 22),
    "efficientnet-b3": (4, 7, 17, 25),
    "efficientnet-b4": (5, 9, 21, 31),
    "efficientnet-b5": (7, 12, 26, 38),
    "efficientnet-b6": (8, 14, 30, 44),
    "efficientnet-b7": (10, 17, 37, 54),
}

_ACTIVATIONS: dict[str | None, Callable[[], nn.Module]] = {
    None: nn.Identity,
    "sigmoid": nn.Sigmoid,
    "softmax": lambda: nn.Softmax(dim=1),
}


def adapt_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """ImageNet stem kernels (O, 3, k, k) for ``in_channels`` inputs, as smp's ``patch_first_conv`` does: one
    channel gets the sum of the RGB kernels; otherwise channel i gets kernel ``i mod 3``, all scaled by
    3 / in_channels (so a grey image repeated over the channels gives the RGB network's response)."""
    if in_channels == 1:
        return weight.sum(1, keepdim=True)
    index = torch.arange(in_channels) % weight.shape[1]
    return weight[:, index] * (weight.shape[1] / in_channels)


def _out_channels(block: nn.Module) -> int:
    """Output channels of one of MONAI's MBConv blocks: those of its projection convolution."""
    conv = block.get_submodule("_project_conv")
    assert isinstance(conv, nn.Conv2d)
    return conv.out_channels


class EfficientNetFeatures(nn.Module):
    """MONAI's EfficientNet as smp's encoder: (B, C_in, H, W) -> five feature maps at strides 2, 4, 8, 16, 32.

    Parameter names are smp's: ``_conv_stem``, ``_bn0``, ``_blocks.<n>`` (MONAI's per-stage blocks listed flat,
    keeping their numbers), ``_conv_head``, ``_bn1``. The last two (EfficientNet's classification head) are
    not used, as in smp, and are frozen so that distributed training does not wait for their gradients; they
    are kept so that smp's files load whole and the parameter count is smp's.

    Args:
        backbone: ``"efficientnet-b0"`` ... ``"efficientnet-b7"``.
        in_channels: image channels.
        pretrained: start from the ImageNet weights MONAI downloads (EfficientNet-PyTorch's release, which smp
            0.3-0.4 downloads for ``encoder_weights="imagenet"``); for ``in_channels`` other than 3 the stem
            kernels are adapted by :func:`adapt_input_channels`.
    """

    def __init__(self, backbone: str = "efficientnet-b0", in_channels: int = 3, pretrained: bool = False) -> None:
        super().__init__()
        if backbone not in SMP_FEATURE_BLOCKS:
            raise ValueError(f"backbone: expected one of {sorted(SMP_FEATURE_BLOCKS)}, got {backbone!r}.")
        net = EfficientNetBNFeatures(
            backbone, pretrained=pretrained, spatial_dims=2, in_channels=3 if pretrained else in_channels
        )
        if pretrained and in_channels != 3:
            stem = net._conv_stem
            (kh, kw), (sh, sw) = stem.kernel_size, stem.stride
            net._conv_stem = nn.Conv2d(in_channels, stem.out_channels, (kh, kw), (sh, sw), bias=False)
            net._conv_stem.weight.data.copy_(adapt_input_channels(stem.weight.data, in_channels))
        self._conv_stem_padding = net._conv_stem_padding
        self._conv_stem = net._conv_stem
        self._bn0 = net._bn0
        self._swish = net._swish
        self._blocks = nn.ModuleList([block for stage in net._blocks.children() for block in stage.children()])
        self._conv_head = net._conv_head
        self._bn1 = net._bn1
        for parameter in [*self._conv_head.parameters(), *self._bn1.parameters()]:
            parameter.requires_grad_(False)
        self.taps: list[int] = list(SMP_FEATURE_BLOCKS[backbone])
        self.out_channels: list[int] = [self._conv_stem.out_channels] + [
            _out_channels(self._blocks[index]) for index in self.taps
        ]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self._swish(self._bn0(self._conv_stem(self._conv_stem_padding(x))))
        features = [x]
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.taps:
                features.append(x)
        return features


class UNetDecoderBlock(nn.Module):
    """Up-sample (B, C, h, w) to ``size`` (nearest), concatenate the skip (B, S, H, W), two 3x3 conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = Convolution(
            2, in_channels + skip_channels, out_channels, kernel_size=3, act="relu", norm="batch", bias=False
        )
        self.conv2 = Convolution(2, out_channels, out_channels, kernel_size=3, act="relu", norm="batch", bias=False)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: list[int]) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetDecoder(nn.Module):
    """smp's ``UnetDecoder`` without centre: features (strides 2 ... 32) -> (B, decoder_channels[-1], H, W).

    Block i takes the previous output (first: the stride-32 feature) and the feature one stride finer as skip;
    the last block has no skip. Initialised as smp initialises its decoder (Kaiming-uniform convolutions).
    """

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int]) -> None:
        super().__init__()
        if len(decoder_channels) != len(encoder_channels):
            raise ValueError(
                f"decoder_channels: expected {len(encoder_channels)} widths (one per encoder stage), "
                f"got {list(decoder_channels)}."
            )
        skips = list(encoder_channels[-2::-1]) + [0]
        inputs = [encoder_channels[-1]] + list(decoder_channels[:-1])
        self.blocks = nn.ModuleList([UNetDecoderBlock(i, s, o) for i, s, o in zip(inputs, skips, decoder_channels)])
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, features: list[torch.Tensor], size: list[int]) -> torch.Tensor:
        """``features``: encoder outputs, finest first; ``size``: (H, W) of the input."""
        x = features[-1]
        n_skips = len(features) - 1
        for index, block in enumerate(self.blocks):
            if index < n_skips:
                skip = features[n_skips - 1 - index]
                x = block(x, skip, skip.shape[-2:])
            else:
                x = block(x, None, size)
        return x


class EfficientNetUNet(nn.Module):
    """U-Net with an EfficientNet encoder, as smp's ``Unet(encoder_name, in_channels, classes, activation)``:
    (B, C_in, H, W) -> (B, out_channels, H, W), H and W multiples of 32.

    Args:
        backbone: ``"efficientnet-b0"`` ... ``"efficientnet-b7"`` (LMC: b7, DSB: b3).
        in_channels: image channels.
        out_channels: output channels (smp's ``classes``).
        pretrained: ImageNet encoder weights (see :class:`EfficientNetFeatures`).
        decoder_channels: widths of the five decoder blocks (smp's default 256, 128, 64, 32, 16).
        activation: applied to the head's output: None (logits), ``"sigmoid"`` or ``"softmax"`` (channels).

    smp ``Unet`` checkpoints load with :func:`common.networks.load_pretrained` (renaming :data:`SMP_UNET_RULES`).
    """

    def __init__(
        self,
        backbone: str = "efficientnet-b0",
        in_channels: int = 3,
        out_channels: int = 1,
        pretrained: bool = False,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        activation: str | None = None,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation: expected one of {list(_ACTIVATIONS)}, got {activation!r}.")
        self.encoder = EfficientNetFeatures(backbone, in_channels, pretrained)
        self.decoder = UNetDecoder(self.encoder.out_channels, decoder_channels)
        self.head = nn.Conv2d(decoder_channels[-1], out_channels, kernel_size=3, padding=1)
        nn.init.xavier_uniform_(self.head.weight)
        assert self.head.bias is not None
        nn.init.zeros_(self.head.bias)
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 32 != 0 or x.shape[-1] % 32 != 0:
            raise ValueError("EfficientNetUNet: expected height and width divisible by 32, got " + str(list(x.shape)))
        features = self.encoder(x)
        return self.activation(self.head(self.decoder(features, [x.shape[-2], x.shape[-1]])))


#: segmentation_models_pytorch ``Unet`` (EfficientNet encoders, smp 0.3-0.6) -> :class:`EfficientNetUNet`:
#:
#: ================================================  ============================================
#: smp                                               ours
#: ================================================  ============================================
#: ``encoder.<rest>`` (``_conv_stem``, ``_bn0``,     ``encoder.<rest>``, unchanged
#: ``_blocks.<n>.*``, ``_conv_head``, ``_bn1``)
#: ``decoder.blocks.<i>.conv<k>.0.`` (convolution)   ``decoder.blocks.<i>.conv<k>.conv.``
#: ``decoder.blocks.<i>.conv<k>.1.`` (batch norm)    ``decoder.blocks.<i>.conv<k>.adn.N.``
#: ``segmentation_head.0.``                          ``head.``
#: ================================================  ============================================
#:
#: smp's Unet has no parameters in ``decoder.center`` (Identity), the attention modules (none) or the
#: activation; a file with other keys (a centre block, another architecture) is refused.
SMP_UNET_RULES = [
    (r"encoder\.", "encoder."),
    (r"decoder\.blocks\.(\d+)\.conv([12])\.0\.", r"decoder.blocks.\1.conv\2.conv."),
    (r"decoder\.blocks\.(\d+)\.conv([12])\.1\.", r"decoder.blocks.\1.conv\2.adn.N."),
    (r"segmentation_head\.0\.", "head."),
]

register_published_format(
    EfficientNetUNet,
    "a segmentation_models_pytorch Unet state dict (LMC's and DSB's published checkpoints)",
    SMP_UNET_RULES,
)
