"""What the toolchain knows about one variant, as data (the registry, the builders and the weight loader
all read it; it imports nothing of theirs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from .features import Feature

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class ModelSpec:
    """Everything the toolchain knows about one variant, as data.

    ``build(batch, height, width)`` returns the module in its static-shape form for that input.
    ``size_error(height, width)`` returns None when the size is supported, else the rule as one line.
    ``key_map`` turns an official state dict into ours (identity where the layouts agree).

    ``features``: the feature stages (output name, channels, stride), in order, as ``features_only`` models
    return them; ``head``: the top-level modules after the last stage that only the classifier uses (absent
    from feature models, their checkpoint keys ignored).

    INT8 hints, as module paths of the exported graph's scopes: ``classifier`` (kept float unless asked),
    ``int8_float_scopes`` (glob patterns kept float, e.g. SE gates), ``block_depth`` (how many leading
    path components name one block, the unit of sensitivity analysis and float fallback) and
    ``int8_attention`` (blocks multiply two activations, as attention does: quantizers that place Q/DQ
    differently for transformers and CNNs, such as NNCF's model types, treat the model as a transformer).
    """

    name: str
    family: str
    build: Callable[[int, int, int], nn.Module]
    native_size: int
    official_params: int | None  # None: a tiny test variant, registered like timm's test_* models
    official_gmacs: float | None
    size_error: Callable[[int, int], str | None]
    key_map: Callable[[StateDict], dict[str, torch.Tensor]] = dict
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.9
    interpolation: str = "bicubic"
    num_classes: int = 1000
    source: str = ""
    classifier: str = "head"
    int8_float_scopes: tuple[str, ...] = ()
    block_depth: int = 2
    int8_attention: bool = True
    features: tuple[Feature, ...] = ()
    head: tuple[str, ...] = ("norm", "head")

    def preprocessing(self, height: int | None = None, width: int | None = None) -> dict:
        """The preprocessing a deployed artifact needs, as plain data (also written to manifests)."""
        h = height or self.native_size
        w = width or self.native_size
        return {
            "resize_short_side": None if self.crop_pct >= 1.0 else int(min(h, w) / self.crop_pct),
            "resize_exact": self.crop_pct >= 1.0,
            "crop": [h, w],
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "color": "RGB",
            "layout": "NCHW",
            "scale": 1.0 / 255.0,
        }
