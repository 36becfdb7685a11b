"""PyTorch implementations of the UniNeXt, ConvMLP and UniNet families, behind one registry."""

from ._registry import create_model, get_spec, list_models
from .spec import ModelSpec
from .stats import count_attention_macs, count_macs, count_params

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "count_macs", "count_attention_macs", "count_params"]
