"""ConvMLP: "ConvMLP: Hierarchical Convolutional MLPs for Vision" (Li et al., arXiv 2109.04454).

Re-implemented from the paper's architecture facts (official code:
SHI-Labs/Convolutional-MLPs, Apache-2.0). Module names follow the official state dict, so official
checkpoints load with the identity key mapping.

Layout: a convolutional tokenizer and conv stage in NCHW, then channels-last (B, H, W, C) stages of
channel MLPs joined by a *non-residual* depthwise 3x3 "connect" conv, then LN, token mean and a linear
head. Fully convolutional: any input size of at least 32 pixels a side.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from torch import Tensor, nn

from ._registry import register
from .features import Backbone, Feature
from .spec import ModelSpec
from .layers import Mlp


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class ConvTokenizer(nn.Module):
    """Three conv-BN-ReLU (stride 2, 1, 1) and a 3x3/2 max pool: output stride 4."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.block = nn.Sequential(*_conv_bn_relu(3, half, 3, 2), *_conv_bn_relu(half, half, 3),
                                   *_conv_bn_relu(half, channels, 3), nn.MaxPool2d(3, 2, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class ConvStage(nn.Module):
    """Residual 1x1-3x3-1x1 bottlenecks (ReLU inside the branch, before the add), then a 3x3/2 conv."""

    def __init__(self, num_blocks: int, channels: int, hidden: int, out: int):
        super().__init__()
        self.conv_blocks = nn.ModuleList(
            nn.Sequential(*_conv_bn_relu(channels, hidden, 1), *_conv_bn_relu(hidden, hidden, 3),
                          *_conv_bn_relu(hidden, channels, 1))
            for _ in range(num_blocks))
        self.downsample = nn.Conv2d(channels, out, 3, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.conv_blocks:
            x = x + block(x)
        return self.downsample(x)


class ConvMLPBlock(nn.Module):
    """Channel MLP, depthwise "connect" conv that *replaces* x, channel MLP (channels-last)."""

    def __init__(self, dim: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.channel_mlp1 = Mlp(dim, hidden)
        self.connect_norm = nn.LayerNorm(dim)
        self.connect = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim, bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp2 = Mlp(dim, hidden)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, H, W, C). The norms and MLPs run on (B, H * W, C): OpenVINO's CPU plugin fuses a FullyConnected's
        bias, GELU and FakeQuantize into it only on inputs of rank 3 or less (on rank 4 an INT8 FullyConnected
        wrote f32 for a separate f32 bias Add, 10 % of the model's time). ConvMLP-S at 224, 2 threads, three
        races: OpenVINO INT8 -17 to -21 %, FP32 -3 to -5 %, ONNX Runtime within noise. The residual Adds stay
        on (B, H, W, C): on tokens ONNX Runtime fuses Add + LayerNorm into SkipLayerNormalization, 2-12 %
        slower here."""
        _, height, width, dim = x.shape

        def tokens(t: Tensor) -> Tensor:
            return t.reshape(-1, height * width, dim)

        def grid(t: Tensor) -> Tensor:
            return t.reshape(-1, height, width, dim)

        x = x + grid(self.channel_mlp1(self.norm1(tokens(x))))
        x = self.connect(grid(self.connect_norm(tokens(x))).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + grid(self.channel_mlp2(self.norm2(tokens(x))))


class ConvDownsample(nn.Module):
    def __init__(self, dim: int, out: int):
        super().__init__()
        self.downsample = nn.Conv2d(dim, out, 3, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class BasicStage(nn.Module):
    def __init__(self, depth: int, dim: int, out: int | None, mlp_ratio: float):
        super().__init__()
        self.blocks = nn.ModuleList(ConvMLPBlock(dim, mlp_ratio) for _ in range(depth))
        self.downsample_mlp = ConvDownsample(dim, out) if out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample_mlp(x)


class ConvMLP(Backbone):
    """Feature stages as the official detection backbone (``DetConvMLP``) returns them: the tokenizer (stride
    4), the conv stage (8), stage 0 (16, after its down-sampling) and the last stage (32); stage 1's output
    (also stride 32) is skipped. The final norm belongs to the classifier."""

    def __init__(self, channels: int, n_conv_blocks: int, blocks: tuple[int, ...], dims: tuple[int, ...],
                 mlp_ratio: float, num_classes: int = 1000):
        super().__init__()
        self.tokenizer = ConvTokenizer(channels)
        self.conv_stages = ConvStage(n_conv_blocks, channels, dims[0], dims[0])
        self.stages = nn.ModuleList(
            BasicStage(depth, dim, dims[i + 1] if i + 1 < len(dims) else None, mlp_ratio)
            for i, (depth, dim) in enumerate(zip(blocks, dims)))
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def stage_outputs(self, x: Tensor):
        x = self.tokenizer(x)
        yield x
        x = self.conv_stages(x)
        yield x
        x = self.stages[0](x.permute(0, 2, 3, 1))
        yield x
        for stage in self.stages[1:]:
            x = stage(x)
        yield x

    def feature_map(self, index: int, x: Tensor) -> Tensor:
        return x if index < 2 else x.permute(0, 3, 1, 2)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(self.norm(x.flatten(1, 2)).mean(dim=1))


@dataclass(frozen=True)
class ConvMLPConfig:
    channels: int
    n_conv_blocks: int
    blocks: tuple[int, int, int]
    dims: tuple[int, int, int]
    mlp_ratio: float
    params: int | None  # official, measured on the official code; None for the test variant
    gmacs: float | None


CONFIGS = {
    "convmlp_s": ConvMLPConfig(64, 2, (2, 4, 2), (128, 256, 512), 2, 9_022_920, 2.399),
    "convmlp_m": ConvMLPConfig(64, 3, (3, 6, 3), (128, 256, 512), 3, 17_410_504, 3.948),
    "convmlp_l": ConvMLPConfig(96, 3, (4, 8, 3), (192, 384, 768), 3, 42_728_440, 9.904),
    "test_convmlp": ConvMLPConfig(16, 1, (1, 1, 1), (32, 64, 128), 2, None, None),  # tiny, for fast tests
}


def _build(cfg: ConvMLPConfig, batch: int, height: int, width: int, num_classes: int = 1000) -> ConvMLP:
    # Fully convolutional: the static shape comes from the export input alone.
    return ConvMLP(cfg.channels, cfg.n_conv_blocks, cfg.blocks, cfg.dims, cfg.mlp_ratio, num_classes)


def _features(cfg: ConvMLPConfig) -> tuple[Feature, ...]:
    return tuple(Feature(f"stage{i + 1}", channels, 4 * 2 ** i)
                 for i, channels in enumerate((cfg.channels, *cfg.dims)))


def _size_error(height: int, width: int) -> str | None:
    if min(height, width) < 32:
        return "ConvMLP needs at least 32 pixels a side (output stride 32)"
    return None


for _name, _cfg in CONFIGS.items():
    register(ModelSpec(
        name=_name, family="convmlp", build=partial(_build, _cfg), native_size=224 if _cfg.params else 64,
        official_params=_cfg.params, official_gmacs=_cfg.gmacs, size_error=_size_error,
        crop_pct=0.9, source="SHI-Labs/Convolutional-MLPs@092bf71", block_depth=4, int8_attention=False,
        features=_features(_cfg)))

