"""Where does an ONNX graph first disagree with PyTorch? Module-by-module comparison.

The TorchScript exporter names tensors after the module scope that produced them
(``/stages.0/blocks.1/norm1/LayerNormalization_output_0``), so each PyTorch module's output maps to the
last tensor of its scope. Those tensors are exposed as extra graph outputs and compared, in the order
the modules finish in PyTorch, with the outputs recorded by forward hooks. Only module outputs are
marked, not every tensor: marking everything would break the fusions whose numerics are under test
(the Polygraphy "mark all" caveat).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from .device import runtimes
from .device.compare import Metrics, Miss, compare_arrays, failures
from .export.scopes import module_path


@dataclass
class Divergence:
    module: str
    tensor: str
    metrics: Metrics
    reasons: list[Miss]
    checked: int  # modules compared up to and including this one

    def __str__(self) -> str:
        return (f"first diverges at module {self.module} (tensor {self.tensor}): {', '.join(map(str, self.reasons))} "
                f"after {self.checked - 1} matching module outputs")


def _scope_outputs(model: onnx.ModelProto) -> dict[str, str]:
    """Module path -> the last tensor produced inside that module's scope (graph order is topological)."""
    last: dict[str, str] = {}
    for node in model.graph.node:
        for tensor in node.output:
            path = module_path(tensor)
            while path:
                last[path] = tensor
                path = path.rpartition(".")[0]
    return last


def locate_divergence(torch_model: torch.nn.Module, onnx_path: str | Path, x: np.ndarray,
                      tolerance: dict) -> Divergence | None:
    """The first module (in PyTorch execution order) whose ONNX output misses ``tolerance``, or None."""
    recorded: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def hook(name):
        def record(module, inputs, output):
            if isinstance(output, torch.Tensor) and name not in recorded:
                recorded[name] = output.detach().clone()
                order.append(name)
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in torch_model.named_modules() if n]
    try:
        with torch.inference_mode():
            torch_model(torch.from_numpy(x))
    finally:
        for handle in handles:
            handle.remove()

    model = onnx.load(str(onnx_path))
    scopes = _scope_outputs(model)
    wanted = {n: scopes[n] for n in order if n in scopes}
    existing = {o.name for o in model.graph.output}
    for tensor in dict.fromkeys(wanted.values()):
        if tensor not in existing:
            model.graph.output.append(onnx.ValueInfoProto(name=tensor))
    # basic optimisation only: fusions would swallow the intermediate tensors compared here
    native = runtimes.load(runtimes.GRAPH_RUNTIME, model.SerializeToString(), "fp32", optimization="basic").native
    session = native["session"]
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(None, {native["input"]: x})))
    checked = 0
    for i, module in enumerate(order):
        tensor = wanted.get(module)
        if tensor is None:
            continue
        # A layer folded at export (a BatchNorm into its conv) has no tensor of its own: the tensor of
        # the module before it then holds the folded layer's output instead.
        folded = _until_next_tracked(order[i + 1:], wanted)
        verdicts = [_verdict(recorded[m], values[tensor], tolerance) for m in [module, *folded]]
        verdicts = [v for v in verdicts if v is not None]
        if not verdicts:
            continue
        checked += 1
        if all(reasons for _, reasons in verdicts):
            metrics, reasons = verdicts[0]
            return Divergence(module, tensor, metrics, reasons, checked)
    return None


def _until_next_tracked(modules: list[str], tracked: dict[str, str]) -> list[str]:
    following = []
    for module in modules:
        if module in tracked:
            break
        following.append(module)
    return following


def _verdict(expected: torch.Tensor, actual: np.ndarray, tolerance: dict):
    """(metrics, reasons it misses the tolerance) for same-shaped tensors, else None."""
    if actual.shape != tuple(expected.shape):
        return None
    metrics = compare_arrays(expected.float().numpy().reshape(1, -1), actual.reshape(1, -1), logits=False,
                             name="")
    return metrics, failures(metrics, {k: v for k, v in tolerance.items() if k in ("cosine", "rel_max_abs")})
