"""UniNeXt: "UniNeXt: Exploring A Unified Architecture for Vision Recognition" (arXiv 2304.13700,
ACM MM 2023).

Re-implemented from the paper's architecture facts (official code:
jianlong-yuan/UniNeXt, no licence, so nothing is copied). Module and parameter names follow the official
state dicts, so official checkpoints load with the identity key mapping.

Layout: an LN+GELU conv stem and four stages of pre-norm blocks in token layout (B, H*W, C), joined by
stride-2 conv "merge" blocks. Every block is x + proj(mixer(LN x)), then x + ICMLP(LN x), where the
ICMLP has a depthwise 3x3 conv in its hidden space, and every block is followed by a residual depthwise
3x3 conv (``cpe``). Only the spatial token mixer differs between variants: local window attention,
cross-shaped (CSWin) stripe attention, PVT spatial-reduction attention, a 7x7 depthwise conv or 3x3
average pooling, each plus a depthwise 3x3 "lepe" on its values or input. Head: LN, token mean, linear.

Static shapes: a model is built for one input size. Every grid, window, stripe, padding and reduction
size is a Python int fixed at construction, and forward reshapes only with those and -1 for the batch,
so an exported graph holds constant shapes and stays correct at any batch size (the official CSWin
code bakes the traced batch size into its window merge). Supported sizes:

- local window, PVT, DWConv and pooling: sides that are multiples of 32 (the official code takes only
  square ones). Local window attention pads q/k/v with zeros to a multiple of the 7x7 window when a
  stage grid needs it and, like the official code, uses no mask, so padded zero keys take part in
  the softmax.
- CSWin: sides that are multiples of 112, so that each stage's stripe width (1, 2, 7) divides its grid;
  the last stage attends globally at any size. The branch structure stays that of the 224 model so the
  same weights apply (the official code runs at 224 only).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._registry import register
from .features import Backbone, Feature
from .layers import HEAD_DIM, attention, conv_out, scale_q, tokens_to_nchw, unstack
from .spec import ModelSpec

DEPTHS = (2, 2, 18, 2)
MLP_RATIO = 4
WINDOW = 7
CSWIN_STRIPES = (1, 2, 7)  # stripe width of stages 1-3; stage 4 is one global window
PVT_SR_RATIOS = (8, 4, 2, 1)


class TokenConv(nn.Conv2d):
    """A conv applied to tokens: (B, H*W, Cin) -> (B, H'*W', Cout), with H and W fixed at build time."""

    def __init__(self, cin: int, cout: int, height: int, width: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1, padding: int | None = None):
        padding = kernel // 2 if padding is None else padding
        super().__init__(cin, cout, kernel, stride, padding, groups=groups)
        self.height, self.width = height, width
        self.out_tokens = conv_out(height, kernel, stride, padding) * conv_out(width, kernel, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        x = x.transpose(1, 2).reshape(-1, self.in_channels, self.height, self.width)
        return super().forward(x).reshape(-1, self.out_channels, self.out_tokens).transpose(1, 2)


def _depthwise(dim: int, height: int, width: int, kernel: int = 3) -> TokenConv:
    return TokenConv(dim, dim, height, width, kernel, groups=dim)


def _qkv_windows(qkv: Tensor, height: int, width: int, win_h: int, win_w: int, heads: int,
                 head_dim: int) -> tuple[Tensor, ...]:
    """Packed q/k/v of an H x W grid, elements ordered (B, H, W, 3, heads, head_dim), to windows.

    Returns q, k, v of shape (B * windows, heads, win_h * win_w, head_dim), windows in row-major order.
    One Transpose that keeps head_dim innermost: in two steps (windows, then q/k/v and heads) it was 2-4 %
    slower on ONNX Runtime (UniNeXt-T 69.4 -> 66.8 ms, 2 threads, one race); moving head_dim out of the
    innermost axis is far slower still (an element-wise copy, 1 ms per stage-1 window split).
    """
    x = qkv.reshape(-1, win_h, width // win_w, win_w, 3, heads, head_dim)  # batch x rows of windows first
    x = x.permute(4, 0, 2, 5, 1, 3, 6)  # (3, B * rows of windows, columns, heads, win_h, win_w, head_dim)
    return unstack(x.reshape(3, -1, heads, win_h * win_w, head_dim), 3)


def _merge_windows(x: Tensor, height: int, width: int, win_h: int, win_w: int, heads: int,
                   head_dim: int) -> Tensor:
    """(B * windows, heads, win_h * win_w, head_dim) -> (B, H, W, heads * head_dim), in one Transpose."""
    x = x.reshape(-1, width // win_w, heads, win_h, win_w, head_dim)  # batch x rows of windows first
    return x.permute(0, 3, 1, 4, 2, 5).reshape(-1, height, width, heads * head_dim)


class WindowAttention(nn.Module):
    """Local 7x7 window attention with a depthwise 3x3 "lepe" on the whole-image V.

    Grids that are not a multiple of the window are zero-padded right and bottom *after* the qkv
    projection and attended without a mask, as in the official code; the padding is cropped after.
    (The official code pads a whole extra window on a side that is already a multiple when the other
    is not; such windows hold only padding and are cropped, so padding each side to the next multiple
    gives the same result.)
    Takes packed q/k/v with q already scaled (``layers.scale_q``), as StripeAttention does.
    """

    def __init__(self, dim: int, height: int, width: int, window: int = WINDOW):
        super().__init__()
        self.dim, self.height, self.width, self.window = dim, height, width, window
        self.heads = dim // HEAD_DIM
        self.pad_bottom, self.pad_right = -height % window, -width % window
        self.lepe = _depthwise(dim, height, width)

    def forward(self, qkv: Tensor) -> Tensor:
        lepe = self.lepe(qkv[..., 2 * self.dim:])
        x = qkv.reshape(-1, self.height, self.width, 3 * self.dim)
        if self.pad_bottom or self.pad_right:
            x = F.pad(x, (0, 0, 0, self.pad_right, 0, self.pad_bottom))
        grid = (self.height + self.pad_bottom, self.width + self.pad_right, self.window, self.window)
        q, k, v = _qkv_windows(x, *grid, self.heads, HEAD_DIM)
        x = _merge_windows(attention(q, k, v), *grid, self.heads, HEAD_DIM)
        if self.pad_bottom or self.pad_right:
            x = x[:, :self.height, :self.width]
        return x.reshape(-1, self.height * self.width, self.dim) + lepe


class StripeAttention(nn.Module):
    """One CSWin branch: attention inside stripe_h x stripe_w windows of the grid.

    Its "lepe" (``get_v``) is a depthwise 3x3 applied to V inside each stripe, so it sees zero
    padding at stripe borders. It runs on V in token layout, so ONNX Runtime folds the token <-> NCHW
    transposes into its NCHWc reorders and the attention merges straight back to token order; taken from
    the windowed V (a Transpose in and out, and reorders that fold nothing) it cost UniNeXt-T CSWin
    139.9 -> 131.9 ms on ONNX Runtime and 82.4 -> 75.6 ms on OpenVINO (FP32, 2 threads, one race each).
    Takes packed q/k/v (B, H*W, 3 * dim) with q already scaled (``layers.scale_q``).
    """

    def __init__(self, dim: int, heads: int, height: int, width: int, stripe_h: int, stripe_w: int):
        super().__init__()
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.grid = (height, width, stripe_h, stripe_w)
        self.get_v = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, qkv: Tensor) -> Tensor:
        height, width, _, _ = self.grid
        q, k, v = _qkv_windows(qkv, *self.grid, self.heads, self.head_dim)
        x = _merge_windows(attention(q, k, v), *self.grid, self.heads, self.head_dim)
        return x.reshape(-1, height * width, self.dim) + self._lepe(qkv[..., 2 * self.dim:])

    def _lepe(self, v: Tensor) -> Tensor:
        """``get_v`` of each stripe of V (B, H*W, dim), returned in token order."""
        height, width, stripe_h, stripe_w = self.grid
        weight, dilation = self.get_v.weight, (1, 1)
        if stripe_h == 1:  # one-pixel rows: only the kernel's middle row meets anything but padding
            # (one conv on the image: as a batch of 1-pixel-high stripes with the whole 3x3 it took OpenVINO
            # 0.10 ms per stage-1 block against 0.03 for the other branch's, FP32, 2 threads)
            x, padding, weight = v.reshape(-1, height, width, self.dim), (0, 1), weight[:, :, 1:2]
        elif stripe_w == width:  # rows: a stripe is a contiguous run of tokens
            x, padding = v.reshape(-1, stripe_h, width, self.dim), (1, 1)
        elif stripe_w == 1:  # one-pixel columns: only the kernel's middle column meets anything but padding
            x, padding, weight = v.reshape(-1, height, width, self.dim), (1, 0), weight[..., 1:2]
        else:
            # Columns: token order read as (B, H * stripes, stripe_w) puts a stripe's next row `stripes`
            # rows down, so the stripe's 3x3 is one conv dilated by `stripes` along H, with no transpose
            # of V or of the attention (two per block before: UniNeXt-T CSWin 1807 -> 1727 nodes; per GMAC
            # against the window model, 150 interleaved runs: ONNX Runtime 0.988x -> 0.997x, OpenVINO same).
            stripes = width // stripe_w
            x = v.reshape(-1, height * stripes, stripe_w, self.dim)
            padding, dilation = (stripes, 1), (stripes, 1)
        x = F.conv2d(x.permute(0, 3, 1, 2), weight, self.get_v.bias, padding=padding, dilation=dilation,
                     groups=self.dim)
        return x.permute(0, 2, 3, 1).reshape(-1, height * width, self.dim)


class SRAttention(nn.Module):
    """PVT spatial-reduction attention: keys and values from a stride-``sr`` conv of the input + LN.

    Adds a depthwise 3x3 "lepe" of the input and ends with its own projection.
    """

    def __init__(self, dim: int, height: int, width: int, sr_ratio: int):
        super().__init__()
        self.dim, self.heads, self.tokens, self.sr_ratio = dim, dim // HEAD_DIM, height * width, sr_ratio
        self.kv_tokens = (height // sr_ratio) * (width // sr_ratio)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        if sr_ratio > 1:
            self.sr = TokenConv(dim, dim, height, width, kernel=sr_ratio, stride=sr_ratio, padding=0)
            self.norm = nn.LayerNorm(dim)
        self.lepe = _depthwise(dim, height, width)

    def forward(self, y: Tensor) -> Tensor:
        q = F.linear(y, *scale_q(self.q.weight, self.q.bias, self.dim))
        q = q.reshape(-1, self.tokens, self.heads, HEAD_DIM).transpose(1, 2)
        reduced = self.norm(self.sr(y)) if self.sr_ratio > 1 else y
        kv = self.kv(reduced).reshape(-1, self.kv_tokens, 2, self.heads, HEAD_DIM).permute(2, 0, 3, 1, 4)
        x = attention(q, *unstack(kv, 2))
        return self.proj(x.transpose(1, 2).reshape(-1, self.tokens, self.dim) + self.lepe(y))


class DWConvMixer(nn.Module):
    """ConvNeXt-style mixer: depthwise 7x7 plus the depthwise 3x3 lepe, both on the block input."""

    def __init__(self, dim: int, height: int, width: int):
        super().__init__()
        self.dwconv = _depthwise(dim, height, width, kernel=7)
        self.lepe = _depthwise(dim, height, width)

    def forward(self, y: Tensor) -> Tensor:
        return self.dwconv(y) + self.lepe(y)


class PoolMixer(nn.Module):
    """PoolFormer-style mixer: avgpool3x3(y) - y (padding excluded from the mean) plus the lepe."""

    def __init__(self, dim: int, height: int, width: int):
        super().__init__()
        self.dim, self.height, self.width = dim, height, width
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.lepe = _depthwise(dim, height, width)

    def forward(self, y: Tensor) -> Tensor:
        x = y.transpose(1, 2).reshape(-1, self.dim, self.height, self.width)
        pooled = (self.pool(x) - x).reshape(-1, self.dim, self.height * self.width).transpose(1, 2)
        return pooled + self.lepe(y)


class ConvMlp(nn.Module):
    """ICMLP: fc1 -> GELU, then h + GELU(LN(dw3x3(h))) in the 4x hidden space, then fc2."""

    def __init__(self, dim: int, hidden: int, height: int, width: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.dwconv = _depthwise(hidden, height, width)
        self.norm_act = nn.Sequential(nn.LayerNorm(hidden), nn.GELU())
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.fc1(x))
        return self.fc2(x + self.norm_act(self.dwconv(x)))


class Block(nn.Module):
    """The pre-norm block of every variant (official class ``DilatedBlock``).

    x + proj(mix(norm1(x))), then x + mlp(norm2(x)). Subclasses supply ``mix``; the PVT block keeps its
    projection inside its attention, so its block-level ``proj`` is the identity.
    """

    def __init__(self, dim: int, height: int, width: int, proj: bool = True):
        super().__init__()
        self.dim = dim
        self.norm1 = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim) if proj else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvMlp(dim, MLP_RATIO * dim, height, width)

    def mix(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.proj(self.mix(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class LocalWindowBlock(Block):
    """Window attention; qkv has learned q and v biases but none for k (BEiT-style)."""

    def __init__(self, dim: int, height: int, width: int):
        super().__init__(dim, height, width)
        self.q_bias = nn.Parameter(torch.empty(dim))
        self.v_bias = nn.Parameter(torch.empty(dim))
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attns = nn.ModuleList([WindowAttention(dim, height, width)])

    def mix(self, y: Tensor) -> Tensor:
        bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        return self.attns[0](F.linear(y, *scale_q(self.qkv.weight, bias, self.dim)))


class CSWinBlock(Block):
    """Cross-shaped window attention: vertical stripes on the first half of the channels, horizontal
    stripes on the second half (each with half the heads), or one global window when ``stripe`` is None.
    """

    def __init__(self, dim: int, height: int, width: int, stripe: int | None):
        super().__init__(dim, height, width)
        self.qkv = nn.Linear(dim, 3 * dim)
        heads = dim // HEAD_DIM
        if stripe is None:
            branches = [StripeAttention(dim, heads, height, width, height, width)]
        else:
            branches = [StripeAttention(dim // 2, heads // 2, height, width, height, stripe),
                        StripeAttention(dim // 2, heads // 2, height, width, stripe, width)]
        self.attns = nn.ModuleList(branches)

    def mix(self, y: Tensor) -> Tensor:
        weight, bias = scale_q(self.qkv.weight, self.qkv.bias, self.dim)
        if len(self.attns) == 1:
            return self.attns[0](F.linear(y, weight, bias))
        # Branch i takes the i-th channel half of each of q, k and v: projected by its own rows of the qkv
        # weight (constants in the exported graph) rather than split from one projection, which saves a
        # copy of q/k/v per block (ONNX Runtime: Split 68 -> 46 nodes, 1-2 % of the model's time).
        weight = weight.reshape(3, 2, self.dim // 2, self.dim)
        bias = bias.reshape(3, 2, self.dim // 2)
        return torch.cat([attn(F.linear(y, weight[:, i].reshape(-1, self.dim), bias[:, i].reshape(-1)))
                          for i, attn in enumerate(self.attns)], dim=-1)


class SRBlock(Block):
    """PVT-style block: ``attn`` holds the mixer and its projection."""

    def __init__(self, dim: int, height: int, width: int, sr_ratio: int):
        super().__init__(dim, height, width, proj=False)
        self.attn = SRAttention(dim, height, width, sr_ratio)

    def mix(self, y: Tensor) -> Tensor:
        return self.attn(y)


class ConvMixerBlock(Block):
    """Block with a parameter-light mixer (DWConv or pooling) that works on norm1(x) directly."""

    def __init__(self, mixer: nn.Module, dim: int, height: int, width: int):
        super().__init__(dim, height, width)
        self.attns = nn.ModuleList([mixer])

    def mix(self, y: Tensor) -> Tensor:
        return self.attns[0](y)


def _make_block(mixer: str, stage: int, dim: int, height: int, width: int) -> Block:
    if mixer == "window":
        return LocalWindowBlock(dim, height, width)
    if mixer == "cswin":
        return CSWinBlock(dim, height, width, CSWIN_STRIPES[stage] if stage < 3 else None)
    if mixer == "pvt":
        return SRBlock(dim, height, width, PVT_SR_RATIOS[stage])
    if mixer == "dwconv":
        return ConvMixerBlock(DWConvMixer(dim, height, width), dim, height, width)
    if mixer == "pool":
        return ConvMixerBlock(PoolMixer(dim, height, width), dim, height, width)
    raise ValueError(f"unknown UniNeXt mixer {mixer!r}")


class MergeBlock(nn.Module):
    """Stride-2 conv 3x3 between stages, then LN (tokens in, tokens out)."""

    def __init__(self, dim: int, out: int, height: int, width: int):
        super().__init__()
        self.conv = TokenConv(dim, out, height, width, stride=2)
        self.norm = nn.LayerNorm(out)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x))


class UniNeXt(Backbone):
    """Stem, then for each stage i: ``merge{i-1}``, blocks ``stage{i}`` each followed by x + ``cpe{i}``(x).

    Feature stages: the four stages' token outputs as NCHW maps (strides 4-32); the final norm belongs to
    the classifier (the official detection backbone adds per-output norms of its own, trained there)."""

    def __init__(self, embed_dim: int, mixer: str, height: int, width: int, num_classes: int = 1000,
                 depths: tuple[int, ...] = DEPTHS):
        super().__init__()
        self.depths = depths
        half = embed_dim // 2
        height, width = conv_out(height), conv_out(width)
        self.stem_tokens = height * width
        self.stem1 = nn.Conv2d(3, half, 3, 2, 1)
        self.norm_act1 = nn.Sequential(nn.LayerNorm(half), nn.GELU())
        self.stem2 = TokenConv(half, half, height, width)
        self.norm_act2 = nn.Sequential(nn.LayerNorm(half), nn.GELU())
        self.stem3 = TokenConv(half, half, height, width)
        self.norm_act3 = nn.Sequential(nn.LayerNorm(half), nn.GELU())
        dim_in = half
        self.grids: list[tuple[int, int, int]] = []  # (channels, height, width) of each stage's output
        for stage, depth in enumerate(depths):
            dim = embed_dim * 2 ** stage
            self.add_module(f"merge{stage}", MergeBlock(dim_in, dim, height, width))
            height, width = conv_out(height), conv_out(width)
            self.add_module(f"stage{stage + 1}", nn.ModuleList(
                _make_block(mixer, stage, dim, height, width) for _ in range(depth)))
            self.add_module(f"cpe{stage + 1}", nn.ModuleList(
                _depthwise(dim, height, width) for _ in range(depth)))
            dim_in = dim
            self.grids.append((dim, height, width))
        self.norm = nn.LayerNorm(dim_in)
        self.head = nn.Linear(dim_in, num_classes)

    def stage_outputs(self, x: Tensor):
        x = self.stem1(x)
        x = self.norm_act1(x.reshape(-1, self.stem1.out_channels, self.stem_tokens).transpose(1, 2))
        x = self.norm_act2(self.stem2(x))
        x = self.norm_act3(self.stem3(x))
        for stage in range(len(self.depths)):
            x = getattr(self, f"merge{stage}")(x)
            for block, cpe in zip(getattr(self, f"stage{stage + 1}"), getattr(self, f"cpe{stage + 1}")):
                x = block(x)
                x = x + cpe(x)
            yield x

    def feature_map(self, index: int, x: Tensor) -> Tensor:
        return tokens_to_nchw(x, *self.grids[index])

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(self.norm(x).mean(dim=1))


@dataclass(frozen=True)
class UniNeXtConfig:
    mixer: str  # window | cswin | pvt | dwconv | pool
    embed_dim: int
    params: int | None  # official, measured on the official code; None for the test variant
    gmacs: float | None
    depths: tuple[int, int, int, int] = DEPTHS


CONFIGS = {
    "uninext_t": UniNeXtConfig("window", 64, 23_523_240, 4.464),
    "uninext_s": UniNeXtConfig("window", 96, 52_177_288, 9.818),
    "uninext_b": UniNeXtConfig("window", 128, 92_093_288, 17.252),
    "uninext_t_cswin": UniNeXtConfig("cswin", 64, 23_529_256, 4.561),
    "uninext_s_cswin": UniNeXtConfig("cswin", 96, 52_186_312, 9.963),
    "uninext_b_cswin": UniNeXtConfig("cswin", 128, 92_105_320, 17.446),
    "uninext_t_pvt": UniNeXtConfig("pvt", 64, 29_311_400, 4.303),
    "uninext_t_dwconv": UniNeXtConfig("dwconv", 64, 18_577_320, 3.463),
    "uninext_t_pool": UniNeXtConfig("pool", 64, 18_276_520, 3.387),
    # tiny models for fast tests: every code path of a mixer, one block a stage (test_uninext: the window one)
    "test_uninext": UniNeXtConfig("window", 32, None, None, depths=(1, 1, 1, 1)),
    # (CSWin's two stripe branches take half the heads each: 64 channels, two heads of 32, at least)
    **{f"test_uninext_{mixer}": UniNeXtConfig(mixer, 64 if mixer == "cswin" else 32, None, None, depths=(1, 1, 1, 1))
       for mixer in ("cswin", "pvt", "dwconv", "pool")},
}


def _build(cfg: UniNeXtConfig, batch: int, height: int, width: int, num_classes: int = 1000) -> UniNeXt:
    # Batch-independent: forward reshapes use -1 for the batch.
    return UniNeXt(cfg.embed_dim, cfg.mixer, height, width, num_classes, depths=cfg.depths)


def _size_error(cfg: UniNeXtConfig, height: int, width: int) -> str | None:
    if cfg.mixer == "cswin":
        if min(height, width) < 112 or height % 112 or width % 112:
            return ("UniNeXt CSWin models need sides that are multiples of 112 "
                    "(stripe widths 1, 2, 7 must divide the 1/4, 1/8, 1/16 grids)")
    elif min(height, width) < 32 or height % 32 or width % 32:
        return "UniNeXt models need sides that are multiples of 32 (output stride 32)"
    return None


for _name, _cfg in CONFIGS.items():
    register(ModelSpec(
        name=_name, family="uninext", build=partial(_build, _cfg), native_size=224 if _cfg.params else 112 if _cfg.mixer == "cswin" else 64,
        official_params=_cfg.params, official_gmacs=_cfg.gmacs, size_error=partial(_size_error, _cfg),
        crop_pct=0.9, source="jianlong-yuan/UniNeXt@413ff71",
        # INT8: the PC convs (cpe) read the residual stream, whose range per-tensor INT8 cannot hold:
        # measured on UniNeXt-T, keeping them float lifts the cosine to PyTorch from 0.971 to 0.997.
        int8_float_scopes=("cpe*",),
        features=tuple(Feature(f"stage{i + 1}", _cfg.embed_dim * 2 ** i, 4 * 2 ** i) for i in range(4))))
