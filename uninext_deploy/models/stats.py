"""Parameter and MAC counts, measured on meta tensors so that even the largest variant counts in seconds."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ._registry import get_spec, resolve_size
from .features import strip_head


def _meta_model(name: str, input_size, batch_size: int, out_indices: tuple[int, ...] | None = None):
    spec = get_spec(name)
    h, w = resolve_size(spec, input_size)
    with torch.device("meta"):
        model = spec.build(batch_size, h, w).eval()
    if out_indices is not None:
        strip_head(model, spec.head, out_indices)
    return model, (batch_size, 3, h, w)


def count_params(name: str, input_size=None) -> int:
    model, _ = _meta_model(name, input_size, 1)
    return sum(p.numel() for p in model.parameters())


def _flops(name: str, input_size, batch_size: int, out_indices: tuple[int, ...] | None) -> FlopCounterMode:
    model, shape = _meta_model(name, input_size, batch_size, out_indices)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(shape, device="meta"))
    return counter


def count_macs(name: str, input_size=None, batch_size: int = 1, out_indices: tuple[int, ...] | None = None) -> int:
    """Multiply-accumulates of one forward pass (convolutions, matmuls, attention), per torch's flop counter;
    ``out_indices``: of the feature model of those stages."""
    return _flops(name, input_size, batch_size, out_indices).get_total_flops() // 2


def count_attention_macs(name: str, input_size=None, batch_size: int = 1) -> int:
    """The part of ``count_macs`` in q @ k^T and attn @ v: the batched matmuls (projections count as addmm)."""
    return _flops(name, input_size, batch_size, None).get_flop_counts()["Global"].get(torch.ops.aten.bmm, 0) // 2
