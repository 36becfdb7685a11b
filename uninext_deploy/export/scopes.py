"""Module scopes in exported node and tensor names: how the TorchScript exporter names what each PyTorch
module produced (divergence location, INT8 exclusions and fallback blocks match on these)."""

from __future__ import annotations


def module_path(tensor_name: str) -> str | None:
    """The PyTorch module a TorchScript-exported tensor or node belongs to, from its scope name:
    ``/conv_stages/conv_blocks.0/conv_blocks.0.2/Relu_output_0`` -> ``conv_stages.conv_blocks.0.2``."""
    if not tensor_name.startswith("/"):
        return None
    parts = tensor_name[1:].split("/")[:-1]
    path: list[str] = []
    for part in parts:
        previous = path[-1] if path else None
        path.append(part[len(previous) + 1:] if previous and part.startswith(previous + ".") else part)
    return ".".join(path) or None
