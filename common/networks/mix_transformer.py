"""SegFormer's Mix Transformer (MiT) encoder, sizes B0 to B5, and the renaming of its published ImageNet weights.

Four stages, each an overlapping patch embedding (a strided convolution: 7x7 stride 4, then 3x3 stride 2)
followed by transformer blocks and a layer norm; the stages give features at 1/4, 1/8, 1/16 and 1/32 of the
input. A block is efficient self-attention (keys and values from a grid shrunk by a strided convolution of
ratio 8, 4, 2, 1 per stage) and a Mix-FFN (linear, 3x3 depthwise convolution, GELU, linear), each pre-normed
and residual with stochastic depth. Sizes follow Xie et al. 2021 (SegFormer) as MEDIAR uses them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers import DropPath
from torch import nn

from .weights import register_published_format

__all__ = ["MIT_IMAGENET_RULES", "MIT_SIZES", "MixTransformer"]

#: embedding widths, heads and blocks per stage of each published MiT size.
MIT_SIZES = {
    "mit_b0": dict(widths=(32, 64, 160, 256), heads=(1, 2, 5, 8), depths=(2, 2, 2, 2)),
    "mit_b1": dict(widths=(64, 128, 320, 512), heads=(1, 2, 5, 8), depths=(2, 2, 2, 2)),
    "mit_b2": dict(widths=(64, 128, 320, 512), heads=(1, 2, 5, 8), depths=(3, 4, 6, 3)),
    "mit_b3": dict(widths=(64, 128, 320, 512), heads=(1, 2, 5, 8), depths=(3, 4, 18, 3)),
    "mit_b4": dict(widths=(64, 128, 320, 512), heads=(1, 2, 5, 8), depths=(3, 8, 27, 3)),
    "mit_b5": dict(widths=(64, 128, 320, 512), heads=(1, 2, 5, 8), depths=(3, 6, 40, 3)),
}
#: spatial reduction of keys and values per stage, MLP expansion, and the layer-norm epsilon of blocks and stages.
REDUCTION_RATIOS = (8, 4, 2, 1)
MLP_RATIO = 4
BLOCK_NORM_EPS = 1e-6


class PatchEmbedding(nn.Module):
    """(B, C_in, H, W) -> (B, N, C) tokens of an overlapping strided convolution, layer-normed, and the new H, W."""

    def __init__(self, in_channels: int, width: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, width, kernel_size, stride, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor):
        x = self.proj(x)
        height, width = x.shape[2], x.shape[3]
        return self.norm(x.flatten(2).transpose(1, 2)), height, width


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from the token grid shrunk ``ratio`` times.

    Input and output (B, N, C) tokens of an (H, W) grid.
    """

    def __init__(self, width: int, heads: int, ratio: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width: {width} is not divisible by {heads} heads.")
        self.heads = heads
        self.ratio = ratio
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)
        # a 1x1 identity when ratio == 1 keeps one code path for TorchScript; it has no published weights
        self.reduce = nn.Conv2d(width, width, ratio, ratio) if ratio > 1 else nn.Identity()
        self.reduce_norm = nn.LayerNorm(width) if ratio > 1 else nn.Identity()

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
        context = x
        if self.ratio > 1:
            grid = x.transpose(1, 2).reshape(b, c, height, width)
            context = self.reduce_norm(self.reduce(grid).flatten(2).transpose(1, 2))
        kv = self.kv(context).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])  # softmax(q k^T / sqrt(c / heads)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    """Linear, 3x3 depthwise convolution over the token grid, GELU, linear: (B, N, C) -> (B, N, C)."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.fc1(x)
        b, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, height, width)).flatten(2).transpose(1, 2)
        return self.fc2(self.act(x))


class TransformerBlock(nn.Module):
    """Pre-norm residual attention and Mix-FFN with stochastic depth: (B, N, C) -> (B, N, C)."""

    def __init__(self, width: int, heads: int, ratio: int, drop_path: float) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(width, eps=BLOCK_NORM_EPS)
        self.attn = EfficientSelfAttention(width, heads, ratio)
        self.ffn_norm = nn.LayerNorm(width, eps=BLOCK_NORM_EPS)
        self.ffn = MixFFN(width, MLP_RATIO * width)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.attn_norm(x), height, width))
        return x + self.drop_path(self.ffn(self.ffn_norm(x), height, width))


class MixTransformerStage(nn.Module):
    """Patch embedding, blocks and a final layer norm: (B, C_in, H, W) -> (B, C, H / s, W / s)."""

    def __init__(self, in_channels: int, width: int, heads: int, ratio: int, drop_paths: Sequence[float], first: bool):
        super().__init__()
        self.embed = PatchEmbedding(in_channels, width, 7 if first else 3, 4 if first else 2)
        self.blocks = nn.ModuleList([TransformerBlock(width, heads, ratio, p) for p in drop_paths])
        self.norm = nn.LayerNorm(width, eps=BLOCK_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, height, width = self.embed(x)
        for block in self.blocks:
            tokens = block(tokens, height, width)
        tokens = self.norm(tokens)
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, height, width)


class MixTransformer(nn.Module):
    """MiT encoder: (B, C_in, H, W) -> four feature maps at 1/4, 1/8, 1/16, 1/32 of (H, W).

    Args:
        size: ``"mit_b0"`` ... ``"mit_b5"`` (see :data:`MIT_SIZES`).
        in_channels: input channels (3 for ImageNet weights).
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 over the blocks (0.1 in
            SegFormer and MEDIAR).

    Attributes:
        out_channels: channels of the four feature maps.
    """

    def __init__(self, size: str = "mit_b5", in_channels: int = 3, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if size not in MIT_SIZES:
            raise ValueError(f"size: unknown MiT size {size!r}, expected one of {sorted(MIT_SIZES)}.")
        spec = MIT_SIZES[size]
        self.out_channels: list[int] = list(spec["widths"])
        rates = torch.linspace(0, drop_path_rate, sum(spec["depths"])).tolist()
        stages, start, channels = [], 0, in_channels
        layout = zip(spec["widths"], spec["heads"], spec["depths"], REDUCTION_RATIOS)
        for index, (width, heads, depth, ratio) in enumerate(layout):
            stages.append(MixTransformerStage(channels, width, heads, ratio, rates[start : start + depth], index == 0))
            start, channels = start + depth, width
        self.stages = nn.ModuleList(stages)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features: list[torch.Tensor] = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def _init_weights(module: nn.Module) -> None:
    """SegFormer's initialisation: truncated normal linear weights, He-normal (fan-out) convolutions."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _stage(match: re.Match, group: int = 1) -> str:
    return f"stages.{int(match.group(group)) - 1}"


#: Published ImageNet MiT weights (SegFormer's ``mit_b*.pth``, also segmentation_models_pytorch's) -> ours.
#: ``patch_embed<i>.{proj,norm}`` -> ``stages.<i-1>.embed.{proj,norm}``;
#: ``block<i>.<j>.norm1`` / ``.norm2`` -> ``stages.<i-1>.blocks.<j>.attn_norm`` / ``.ffn_norm``;
#: ``block<i>.<j>.attn.{q,kv,proj}`` kept; ``attn.sr`` / ``attn.norm`` -> ``attn.reduce`` / ``attn.reduce_norm``;
#: ``block<i>.<j>.mlp.{fc1,fc2}`` -> ``ffn.{fc1,fc2}``, ``mlp.dwconv.dwconv`` -> ``ffn.dwconv``;
#: ``norm<i>`` -> ``stages.<i-1>.norm``; the classifier ``head.*`` is dropped.
MIT_IMAGENET_RULES = [
    (r"patch_embed(\d)\.", lambda m: f"{_stage(m)}.embed."),
    (r"block(\d)\.(\d+)\.norm1\.", lambda m: f"{_stage(m)}.blocks.{m.group(2)}.attn_norm."),
    (r"block(\d)\.(\d+)\.norm2\.", lambda m: f"{_stage(m)}.blocks.{m.group(2)}.ffn_norm."),
    (r"block(\d)\.(\d+)\.attn\.sr\.", lambda m: f"{_stage(m)}.blocks.{m.group(2)}.attn.reduce."),
    (r"block(\d)\.(\d+)\.attn\.norm\.", lambda m: f"{_stage(m)}.blocks.{m.group(2)}.attn.reduce_norm."),
    (r"block(\d)\.(\d+)\.attn\.(q|kv|proj)\.", lambda m: f"{_stage(m)}.blocks.{m.group(2)}.attn.{m.group(3)}."),
    (r"block(\d)\.(\d+)\.mlp\.dwconv\.dwconv\.", lambda m: f"{_stage(m)}.blocks.{m.group(2)}.ffn.dwconv."),
    (r"block(\d)\.(\d+)\.mlp\.(fc1|fc2)\.", lambda m: f"{_stage(m)}.blocks.{m.group(2)}.ffn.{m.group(3)}."),
    (r"norm(\d)\.", lambda m: f"{_stage(m)}.norm."),
    (r"head\.", None),
]


register_published_format(MixTransformer, "SegFormer's ImageNet MiT weights (mit_b*.pth)", MIT_IMAGENET_RULES)
