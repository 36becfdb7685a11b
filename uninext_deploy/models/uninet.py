"""UniNet: "UniNet: Unified Architecture Search with Convolution, Transformer, and MLP" (Liu et al.,
ECCV 2022, arXiv 2207.05420 -- not the different arXiv v1 2110.04035 architecture).

Re-implemented from the paper's architecture facts and checked against
the official code (Sense-X/UniNet@81ef332, MIT; its model class is called ``VisionTransformer``).
Module names follow the official state dict, including its single flat ``blocks`` index over
down-sampling modules (DSMs) and blocks, so official checkpoints load with the identity key mapping.

Layout: a stride-2 conv stem, four stages of MBConv-like :class:`DWConvBlock` (with SE), then two stages
of global-attention :class:`AttentionBlock`; a DSM sits before every stage but the first (convolutional
:class:`LocalDSM` before stages 1-3, attention-based :class:`LocalGlobalDSM` before stages 4 and 5).
Every entry of ``blocks`` maps NCHW to NCHW; attention modules switch to tokens (B, H*W, C) inside.

Sizes: the official code runs only at the resolution it was built for (it stores token counts and
recovers the grid with ``sqrt``). Here every grid and token count is a Python int computed at build
time, so any input with both sides >= 32 pixels works, rectangular included: every stride-2 layer is a
3x3 window with padding 1, so all parallel branches agree on ceil(side / 2) at every step. Attention
cost grows with the square of the token count.

Differences from the official code, none of which changes the function (float64 outputs agree to
1e-13): inference only (no drop path, zero-probability dropouts left out, fp32_attn flag and the unused
strided branch of its AttentionBlock not built); the softmax scale is folded into what produces the
queries (the qkv projection, the DSM's q LayerNorm) instead of scaling the scores; token <-> NCHW switches
sit inside the attention modules. LayerNorm eps is PyTorch's default 1e-5, as in the official code.

Export notes: the SE gate is ``b2.3`` of each DWConvBlock (class :class:`SqueezeExcite`, its gate in the
``hard_sigmoid`` submodule); layer scale is the ``gamma_1`` / ``gamma_2`` multiplies of AttentionBlocks.
:meth:`UniNet.fuse_for_export` folds the pre-BatchNorms that exporters cannot fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import register
from .features import Backbone, Feature
from .layers import HEAD_DIM, Q_SCALE, Mlp, attention, conv_out, nchw_to_tokens, scale_q, tokens_to_nchw, unstack
from .spec import ModelSpec

EXPANSION = (1, 4, 6, 3, 2, 5)  # per stage, the same for every variant
STRIDES = (1, 2, 2, 2, 1, 2)  # per stage; the stride is applied by the DSM before the stage
CONV_STAGES = 4  # stages 0-3 are DWConvBlocks, 4-5 AttentionBlocks
STEM_WIDTH = 32
HEAD_WIDTH = 1280

Grid = tuple[int, int]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor`` (at least ``divisor``), never below 90 % of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _strided_shortcut(cin: int, cout: int, stride: int) -> nn.Sequential:
    # Official layout: [MaxPool 3x3 (only when strided)] -> Conv1x1, hence keys residual.0 or residual.1.
    pool = [nn.MaxPool2d(3, stride, 1)] if stride != 1 else []
    return nn.Sequential(*pool, nn.Conv2d(cin, cout, 1))


def _dw_bn_pointwise(cin: int, cout: int, stride: int) -> nn.Sequential:
    """DW3x3 (bias) -> BN -> Conv1x1 (bias), the local branch of both DSMs."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin),
                         nn.Conv2d(cin, cout, 1))


class HardSigmoid(nn.Module):
    """relu6(x + 3) / 6, as the official code writes it (not ONNX's HardSigmoid, which rounds differently)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu6(x + 3.0) / 6.0


class SqueezeExcite(nn.Module):
    """Global average pool -> 1x1 -> ReLU -> 1x1 -> hard-sigmoid, multiplied onto the input."""

    def __init__(self, channels: int):
        super().__init__()
        squeeze = make_divisible(channels // 4)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.hard_sigmoid = HardSigmoid()

    def forward(self, x: Tensor) -> Tensor:
        gate = self.hard_sigmoid(self.fc2(self.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * gate


class DWConvBlock(nn.Module):
    """Inverted residual with SE (NCHW): [pre-BN -> 1x1 -> BN -> GELU] -> DW3x3 -> BN -> GELU -> SE -> 1x1 -> BN.

    ``b1`` exists only when expansion != 1 and starts with a BatchNorm on the block input, which nothing
    before it can absorb (see :meth:`fold_pre_bn`). The shortcut is the identity unless the width changes
    (first block of stage 0), where it is a stride-1 MaxPool 3x3 -> Conv1x1.
    """

    def __init__(self, cin: int, cout: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.residual = nn.Identity()
        if cin != cout:  # the official stride-1 max pool is kept: it changes the values
            self.residual = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(cin, cout, 1))
        self.b1 = None
        if expansion != 1:
            self.b1 = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, hidden, 1, bias=False),
                                    nn.BatchNorm2d(hidden), nn.GELU())
        self.b2 = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.GELU(),
            SqueezeExcite(hidden), nn.Conv2d(hidden, cout, 1), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        branch = x if self.b1 is None else self.b1(x)
        return self.residual(x) + self.b2(branch)

    @torch.no_grad()
    def fold_pre_bn(self) -> None:
        """Fold the pre-BN ``b1.0`` exactly into the bias-free 1x1 conv ``b1.1``, then drop it.

        BN(x) = s * x + t per input channel, so W @ BN(x) = (W * s) @ x + W @ t: the conv's weight is
        scaled per input channel and it gains the bias W @ t (exact because a 1x1 conv has no padding).
        """
        if self.b1 is None or not isinstance(self.b1[0], nn.BatchNorm2d):
            return
        bn, conv = self.b1[0], self.b1[1]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        conv.bias = nn.Parameter(conv.weight.flatten(1) @ shift)
        conv.weight.mul_(scale.view(1, -1, 1, 1))
        self.b1[0] = nn.Identity()


class LocalDSM(nn.Module):
    """Convolutional down-sampling (NCHW): (DW3x3/s -> BN -> 1x1) + (MaxPool3x3/s -> 1x1), no activation."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.residual = _strided_shortcut(cin, cout, stride)
        self.downsample = _dw_bn_pointwise(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(x) + self.residual(x)


class LocalGlobalDSM(nn.Module):
    """Down-sampling by attention: queries from a strided local conv, keys/values at the input resolution.

    q = LN(DW3x3/s -> BN -> 1x1 of x) at the output grid; k, v = Linear(LN(x)) over all input tokens;
    out = proj(softmax attention) + shortcut(x). NCHW in and out.
    """

    def __init__(self, cin: int, cout: int, stride: int, in_grid: Grid, out_grid: Grid):
        super().__init__()
        self.heads = cout // HEAD_DIM
        self.in_width = cin
        self.width = cout
        self.in_tokens = in_grid[0] * in_grid[1]
        self.out_grid = out_grid
        self.out_tokens = out_grid[0] * out_grid[1]
        self.residual = _strided_shortcut(cin, cout, stride)
        self.q = _dw_bn_pointwise(cin, cout, stride)
        self.q_norm = nn.LayerNorm(cout)
        self.kv_norm = nn.LayerNorm(cin)
        self.kv = nn.Linear(cin, 2 * cout)
        self.proj = nn.Linear(cout, cout)

    def forward(self, x: Tensor) -> Tensor:
        norm = self.q_norm  # its affine carries the softmax scale (Q_SCALE), so no Multiply is exported
        q = F.layer_norm(nchw_to_tokens(self.q(x), self.width, self.out_tokens), (self.width,),
                         norm.weight * Q_SCALE, norm.bias * Q_SCALE, norm.eps)
        q = q.reshape(-1, self.out_tokens, self.heads, HEAD_DIM).transpose(1, 2)
        kv = self.kv(self.kv_norm(nchw_to_tokens(x, self.in_width, self.in_tokens)))
        k, v = unstack(kv.reshape(-1, self.in_tokens, 2, self.heads, HEAD_DIM).permute(2, 0, 3, 1, 4), 2)
        out = attention(q, k, v).transpose(1, 2).reshape(-1, self.out_tokens, self.width)
        return tokens_to_nchw(self.proj(out), self.width, *self.out_grid) + self.residual(x)


class Attention(nn.Module):
    """Multi-head global self-attention over a fixed number of tokens."""

    def __init__(self, dim: int, tokens: int):
        super().__init__()
        self.heads = dim // HEAD_DIM
        self.dim = dim
        self.tokens = tokens
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        qkv = F.linear(x, *scale_q(self.qkv.weight, self.qkv.bias, self.dim))
        qkv = qkv.reshape(-1, self.tokens, 3, self.heads, HEAD_DIM).permute(2, 0, 3, 1, 4)
        q, k, v = unstack(qkv, 3)
        out = attention(q, k, v).transpose(1, 2).reshape(-1, self.tokens, self.dim)
        return self.proj(out)


class AttentionBlock(nn.Module):
    """x + pos_embed(x), then pre-LN attention and MLP residuals with layer scale (NCHW in and out).

    The DW3x3 ``pos_embed`` is a conditional positional encoding added to x itself, outside the residual
    branches; it runs on the NCHW view, the rest on tokens.
    """

    def __init__(self, dim: int, expansion: int, grid: Grid):
        super().__init__()
        self.dim = dim
        self.grid = grid
        self.norm1 = nn.LayerNorm(dim)
        self.pos_embed = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.attn = Attention(dim, grid[0] * grid[1])
        self.gamma_1 = nn.Parameter(torch.full((dim,), 1e-6))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim * expansion)
        self.gamma_2 = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: Tensor) -> Tensor:
        x = nchw_to_tokens(x + self.pos_embed(x), self.dim, self.attn.tokens)
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        x = x + self.gamma_2 * self.mlp(self.norm2(x))
        return tokens_to_nchw(x, self.dim, *self.grid)


class UniNet(Backbone):
    """Stem, one flat ``blocks`` sequence (DSMs and blocks, official indexing), conv head, classifier.

    Submodules are registered in the official order, so even the state dict's key order matches. Feature
    stages: the output of each of the six stages (strides 2, 4, 8, 16, 16, 32); the 1x1 conv ``head`` to
    1280 channels belongs to the classifier.
    """

    def __init__(self, repeats: tuple[int, ...], channels: tuple[int, ...], height: int, width: int,
                 num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, STEM_WIDTH, 3, 2, 1, bias=False), nn.BatchNorm2d(STEM_WIDTH),
                                  nn.GELU())
        grid = (conv_out(height), conv_out(width))
        cin = STEM_WIDTH
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []  # index in ``blocks`` of each stage's last block
        for stage, (depth, cout, expansion, stride) in enumerate(zip(repeats, channels, EXPANSION, STRIDES)):
            is_conv = stage < CONV_STAGES
            if stage > 0:
                out_grid = (conv_out(grid[0], stride=stride), conv_out(grid[1], stride=stride))
                blocks.append(LocalDSM(cin, cout, stride) if is_conv
                              else LocalGlobalDSM(cin, cout, stride, grid, out_grid))
                grid, cin = out_grid, cout
            for _ in range(depth):
                blocks.append(DWConvBlock(cin, cout, expansion) if is_conv
                              else AttentionBlock(cout, expansion, grid))
                cin = cout
            self.stage_ends.append(len(blocks) - 1)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, HEAD_WIDTH, 1, bias=False), nn.BatchNorm2d(HEAD_WIDTH),
                                  nn.GELU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(HEAD_WIDTH, num_classes)

    def stage_outputs(self, x: Tensor):
        x = self.stem(x)
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.stage_ends:
                yield x

    def forward_head(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.head(x)).flatten(1))

    def fuse_for_export(self) -> None:
        """Fold every DWConvBlock's standalone pre-BN into its following 1x1 conv, in place (exact)."""
        for module in self.modules():
            if isinstance(module, DWConvBlock):
                module.fold_pre_bn()


@dataclass(frozen=True)
class UniNetConfig:
    native_size: int
    repeats: tuple[int, int, int, int, int, int]
    channels: tuple[int, int, int, int, int, int]
    params: int | None  # official, measured on the official code; None for the test variant
    gmacs: float | None


CONFIGS = {
    "uninet_b0": UniNetConfig(160, (1, 2, 4, 4, 4, 8), (24, 48, 80, 128, 128, 256), 11_450_864, 0.555),
    "uninet_b1": UniNetConfig(224, (1, 2, 4, 4, 4, 8), (24, 48, 80, 128, 128, 256), 11_450_864, 1.118),
    "uninet_b2": UniNetConfig(256, (2, 3, 6, 6, 6, 12), (24, 48, 80, 128, 128, 256), 16_211_472, 2.159),
    "uninet_b3": UniNetConfig(288, (2, 3, 7, 7, 7, 14), (24, 56, 96, 160, 160, 288), 24_020_184, 4.258),
    "uninet_b4": UniNetConfig(320, (2, 4, 9, 9, 9, 18), (32, 64, 112, 192, 192, 352), 43_796_288, 9.429),
    "uninet_b5": UniNetConfig(384, (3, 5, 10, 10, 10, 20), (32, 64, 112, 224, 224, 448), 72_883_072, 20.423),
    "uninet_b6": UniNetConfig(448, (4, 6, 12, 12, 12, 24), (48, 96, 160, 256, 256, 512), 116_687_344, 51.035),
    "test_uninet": UniNetConfig(64, (1, 1, 1, 1, 1, 1), (16, 16, 32, 32, 32, 64), None, None),  # tiny, for fast tests
}


def _build(cfg: UniNetConfig, batch: int, height: int, width: int, num_classes: int = 1000) -> UniNet:
    # Grids and token counts depend on (height, width) only; every reshape keeps the batch as -1.
    return UniNet(cfg.repeats, cfg.channels, height, width, num_classes)


def _features(cfg: UniNetConfig) -> tuple[Feature, ...]:
    strides = [2]
    for stride in STRIDES[1:]:
        strides.append(strides[-1] * stride)
    return tuple(Feature(f"stage{i + 1}", channels, stride)
                 for i, (channels, stride) in enumerate(zip(cfg.channels, strides)))


def _size_error(height: int, width: int) -> str | None:
    if min(height, width) < 32:
        return "UniNet needs at least 32 pixels a side (output stride 32); any larger size, rectangular included"
    return None


for _name, _cfg in CONFIGS.items():
    register(ModelSpec(
        name=_name, family="uninet", build=partial(_build, _cfg), native_size=_cfg.native_size,
        official_params=_cfg.params, official_gmacs=_cfg.gmacs, size_error=_size_error,
        # Official eval: resize the short side to S*256/224 and centre-crop below 320; resize to SxS at/above.
        crop_pct=0.875 if _cfg.native_size < 320 else 1.0, source="Sense-X/UniNet@81ef332",
        classifier="classifier", int8_float_scopes=("blocks.*.b2.3.*",), block_depth=2,
        features=_features(_cfg), head=("head", "avgpool", "classifier")))
