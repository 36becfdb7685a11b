"""PyTorch -> static-shape ONNX: export, simplify, check the simplified graph against the original.

Uses the TorchScript exporter (``dynamo=False``): with a fixed input shape it gives a graph whose shape
arithmetic onnxsim folds away completely, and it is the exporter whose graphs were checked against the
official code of all three families.
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from ..console import progress
from ..device import runtimes
from .graph import GraphReport, check_graph

INPUT_NAME = "input"
DEFAULT_OPSET = 20  # single LayerNormalization (17+) and Gelu (20+) nodes; ORT and OpenVINO take both


@dataclass
class OnnxExport:
    model: onnx.ModelProto
    graph: GraphReport
    simplify_max_abs: float
    seconds: float


def export_onnx(model: nn.Module, *, opset: int = DEFAULT_OPSET, simplify: bool = True,
                check_inputs: int = 2, seed: int = 0) -> OnnxExport:
    """Export ``model`` (built by ``create_model``) at its static ``input_shape``, one named graph output per
    model output (``model.output_names``: the logits, or one feature map per stage).

    Returns the ONNX model in memory; writing it (atomically) is the caller's job. The simplified graph
    is run next to the raw export on ``check_inputs`` seeded random inputs and its largest deviation is
    returned; a deviation above 1e-4 relative to the output scale, or any static-shape problem, raises.
    """
    start = time.perf_counter()
    model = copy.deepcopy(model).eval()
    if hasattr(model, "fuse_for_export"):
        model.fuse_for_export()
    shape = model.input_shape
    buffer = io.BytesIO()
    with (progress.step(f"tracing to ONNX (TorchScript exporter, opset {opset})"), torch.no_grad(),
          warnings.catch_warnings()):
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
        torch.onnx.export(model, (torch.zeros(shape),), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=list(model.output_names), do_constant_folding=True)
    raw = onnx.load_from_string(buffer.getvalue())
    del buffer  # a third copy of the weights beside the model and the ModelProto (UniNeXt-B: 350 MB)
    result = raw
    deviation = 0.0
    if simplify:
        with progress.step(f"simplifying the ONNX graph (onnxsim), checked on {check_inputs} inputs"):
            result = _simplify(raw)
            deviation = _max_rel_deviation(raw, result, shape, check_inputs, seed)
        if deviation > 1e-4:
            raise RuntimeError(f"onnxsim changed the outputs by {deviation:.2e} relative; export with "
                               "--no-simplify and report the model")
    result.ir_version = onnx.helper.find_min_ir_version_for(list(result.opset_import))
    onnx.checker.check_model(result)
    report = check_graph(result)
    if report.problems:
        raise RuntimeError(f"exported graph is not static: {'; '.join(report.problems[:3])}")
    return OnnxExport(result, report, deviation, time.perf_counter() - start)


# onnxsim's batched MatMul+Add -> Reshape/Gemm/Reshape rewrite renames the nodes it touches, losing the
# module scopes that divergence location and INT8 exclusions match on; runtimes fuse MatMul+Add anyway,
# and QDQ placement should see these channels-last linears as MatMul.
_SKIPPED_SIMPLIFIER_PASSES = ["fuse_matmul_add_bias_into_gemm", "fuse_matmul_add_bias_into_gemm_batched"]


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    simplified, ok = onnxsim.simplify(model, skipped_optimizers=list(_SKIPPED_SIMPLIFIER_PASSES))
    if not ok:
        raise RuntimeError("onnxsim could not validate the simplified model")
    return simplified


def _max_rel_deviation(a: onnx.ModelProto, b: onnx.ModelProto, shape, n: int, seed: int) -> float:
    """The largest output deviation of ``b`` from ``a`` relative to ``a``'s scale, on ``n`` seeded inputs. One
    session at a time: each holds its serialized graph and its own weights (UniNeXt-B: 2 x 350 MB)."""
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(shape, dtype=np.float32) for _ in range(n)]

    def outputs(model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
        session = runtimes.load(runtimes.GRAPH_RUNTIME, model.SerializeToString(), "fp32")
        return [session.run(x) for x in inputs]

    reference = outputs(a)
    worst = 0.0
    for ref, out in zip(reference, outputs(b)):
        for name in ref:
            worst = max(worst, float(np.abs(ref[name] - out[name]).max() / max(np.abs(ref[name]).max(), 1e-12)))
    return worst


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Replace the model's metadata_props with ``metadata`` (values as strings)."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=str(value))
