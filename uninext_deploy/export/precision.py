"""Precision in the graph: an FP16-typed ONNX for ``--fp16`` and a QDQ INT8 ONNX for ``--int8``.

TensorRT 11 takes precision from the graph only (strongly typed networks; no FP16/INT8 builder flags,
no calibrators), so these two graphs are the single source of truth: built once here, run by ONNX
Runtime on the CPU so their numerics are checked, and handed unchanged to the TensorRT backend.

FP16: onnxconverter-common with a block list keeping normalisations, softmax and reductions in FP32 (the
TensorRT LayerNorm-overflow lesson) and the graph inputs/outputs FP32.
INT8: ONNX Runtime's static quantizer in QDQ form, symmetric INT8 weights (per channel) and activations
(per tensor), zero points 0 -- the form TensorRT accepts. Only Conv / MatMul / Gemm with a weight are
quantized, so Softmax, LayerNorm, GELU, hard-sigmoid and layer-scale multiplies stay float by
construction, and so do the activation x activation MatMuls of attention (q k^T and the product with the
softmax probabilities, which symmetric INT8 resolves to 7 bits: measured on UniNeXt-T, quantizing them
takes the cosine to PyTorch from above 0.99 to 0.97). SE gates and the classifier are excluded by scope.
The quantizer's shared DQ nodes are then split per reader (:mod:`.placement`) so ONNX Runtime fuses them.
"""

from __future__ import annotations

import copy
import fnmatch
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from ..console import progress
from ..device import runtimes
from ..device.compare import compare, run_batched
from ..options import Int8Options
from .calibration import CalibrationSet
from .placement import QUANTIZED_OPS, dedicate_dequantize
from .quiet import quiet
from .ranges import calibrate
from .scopes import module_path

FP32_OPS_IN_FP16 = ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2",
                    "GlobalAveragePool", "Pow", "Sqrt", "Reciprocal", "Exp", "Log")


def to_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """The FP16-typed graph of ``model`` and a report (ops kept FP32, weights clamped to the FP16 range)."""
    from onnxconverter_common import float16

    model = _outputs_as_identities(model)
    with progress.step("typing the graph FP16 (onnxconverter-common)"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(model, keep_io_types=True,
                                                     op_block_list=list(FP32_OPS_IN_FP16))
    kept = sorted({n.op_type for n in model.graph.node if n.op_type in FP32_OPS_IN_FP16})
    clamped = sum("truncated" in str(w.message) or "out of range" in str(w.message) for w in caught)
    return converted, {"converter": "onnxconverter-common", "fp32_ops": kept, "clamped_weight_tensors": clamped}


def _outputs_as_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy in which every graph output that nodes also read (a feature map feeding the next stage) is
    written by an Identity of its own: onnxconverter-common casts a kept-FP32 output in place, leaving its
    readers a float32 tensor where they expect float16 (ORT then refuses the graph)."""
    read = {name for node in model.graph.node for name in node.input}
    shared = [o.name for o in model.graph.output if o.name in read]
    if not shared:
        return model
    model = copy.deepcopy(model)
    renamed = {name: f"{name}/internal" for name in shared}
    for node in model.graph.node:
        node.input[:] = [renamed.get(n, n) for n in node.input]
        node.output[:] = [renamed.get(n, n) for n in node.output]
    model.graph.node.extend(onnx.helper.make_node("Identity", [renamed[n]], [n], name=f"{n}/Identity") for n in shared)
    return model


def describe(report: dict) -> list[str]:
    """What an FP16-typed or QDQ graph's report says, as the CLI prints it (empty for FP32)."""
    if "fp32_ops" in report:
        return [f"FP16 graph; kept in FP32: {', '.join(report['fp32_ops'])}"]
    if "method" not in report:
        return []
    lines = [f"INT8 QDQ ({report['method']} calibration on {calibrated_on(report)}): cosine to the float "
             f"graph {report['cosine_vs_float']:.5f}; {len(report['kept_float'])} quantizable nodes kept float"]
    for entry in report["sensitivity"][:10]:
        mark = "fell back to float" if entry["block"] in report["fallback"] else ""
        lines.append(f"  {entry['block']:<28} error {entry['error']:.2e}  {mark}")
    return lines + memory(report)


def memory(report: dict) -> list[str]:
    """The INT8 export's peak resident memory, as the CLI prints it (empty where the report has none)."""
    if "peak_rss_mb" not in report:
        return []
    return [f"peak resident memory of the export: {report['peak_rss_mb']} MB (with INT8 calibration on "
            f"{report['calib_size']} samples, held one batch at a time: more samples take time, not memory)"]


LOSSY_COSINE = 0.99  # an INT8 graph below this cosine to its float graph is said so at export


class LossyInt8Warning(UserWarning):
    """An INT8 graph far from its float graph (optimize, which retries with fallback itself, silences it)."""


def warn_if_lossy(cosine: float) -> None:
    """Warn, naming the remedy, when a quantized graph is this far from its float graph (photos)."""
    if cosine < LOSSY_COSINE:
        warnings.warn(LossyInt8Warning(f"the INT8 graph reaches cosine {cosine:.4f} to its float graph on the photos (below "
                      f"{LOSSY_COSINE}); --int8-min-cosine {LOSSY_COSINE} returns its most sensitive blocks to "
                      "float, or try another --calib-method or more --calib images"))


def calibrated_on(report: dict) -> str:
    """"32 samples of 10 images": what an INT8 report was calibrated on (and its 7-bit weights, if so)."""
    seven = ", 7-bit weights (--int8-weight-bits)" if report.get("weight_bits") == 7 else ""
    return f"{report['calib_size']} samples of {report.get('calib_images', report['calib_size'])} images{seven}"


@dataclass
class Int8Request:
    """Everything a backend needs to quantize one model: data, options and the model's INT8 hints."""

    samples: CalibrationSet  # read a batch at a time
    batch: int
    options: Int8Options
    check_inputs: np.ndarray  # held-out photos for accuracy checks
    classifier: str
    float_scope_patterns: tuple[str, ...]
    block_depth: int
    attention: bool  # the model's int8_attention hint
    float_depthwise: bool = False  # the backend's int8_float_depthwise

    @property
    def float_patterns(self) -> list[str]:
        """Module-path globs that stay float: the model's hints, and the classifier unless asked."""
        classifier = [] if self.options.quantize_classifier else [self.classifier, f"{self.classifier}.*"]
        return list(self.float_scope_patterns) + classifier


@dataclass
class Int8Result:
    model: onnx.ModelProto
    report: dict = field(default_factory=dict)


def kept_float(model: onnx.ModelProto, request: Int8Request) -> list[str]:
    """Quantizable nodes that stay float: those in a scope matching a glob of the request's float patterns,
    MatMuls of two activations (attention), and with ``float_depthwise`` every Conv of a block that holds a
    depthwise conv."""
    weights = {init.name: init for init in model.graph.initializer}
    patterns, depth = request.float_patterns, request.block_depth
    depthwise_blocks = {block_of(node.name, depth) for node in model.graph.node
                        if request.float_depthwise and _is_depthwise(node, weights)}
    names = []
    for node in model.graph.node:
        if node.op_type not in QUANTIZED_OPS:
            continue
        path = module_path(node.name + "/_") or ""
        in_scope = any(fnmatch.fnmatchcase(path, p) for p in patterns)
        activation_product = node.op_type == "MatMul" and not weights.keys() & set(node.input)
        conv_by_depthwise = node.op_type == "Conv" and block_of(node.name, depth) in depthwise_blocks
        if in_scope or activation_product or conv_by_depthwise:
            names.append(node.name)
    return names


def _is_depthwise(node: onnx.NodeProto, weights: dict) -> bool:
    """A grouped Conv with one input channel a group (its weight is (C_out, 1, kh, kw))."""
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    return node.op_type == "Conv" and group > 1 and node.input[1] in weights and weights[node.input[1]].dims[1] == 1


def block_of(node_name: str, depth: int) -> str:
    """The block a node belongs to: its module path cut to ``depth`` components."""
    path = module_path(node_name + "/_") or node_name
    return ".".join(path.split(".")[:depth])


class Int8Quantizer:
    """Calibrates once, then quantizes the float graph with any set of excluded nodes (cheaply)."""

    def __init__(self, float_model: onnx.ModelProto, samples: CalibrationSet, batch: int, options: Int8Options):
        self.samples = samples
        self.batch = batch
        self.options = options
        self._tmp = tempfile.TemporaryDirectory(prefix="uninext-int8-")
        self._cache = Path(self._tmp.name) / "calibration.json"
        # quantize_static rewrites the ModelProto it is given, so every call reads this file afresh
        self._float_path = Path(self._tmp.name) / "float.onnx"
        onnx.save(onnx.shape_inference.infer_shapes(float_model), str(self._float_path))

    def quantize(self, exclude: list[str], place: bool = True) -> onnx.ModelProto:
        """The QDQ graph with ``exclude`` left float; ``place=False``: as the quantizer writes it (benchmarks)."""
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[self.options.method]
        out = Path(self._tmp.name) / "qdq.onnx"
        if not self._cache.exists():  # the first call calibrates; every call reads the ranges from the cache
            calibrate(self._float_path, self.samples, self.batch, self.options.method, self._cache, QUANTIZED_OPS)
        with quiet():
            quantize_static(
                self._float_path, out, None, quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True, activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude), calibrate_method=method,
                calibration_cache_path=self._cache, reduce_range=self.options.resolved_weight_bits == 7,
                # biases stay float: TensorRT's explicit quantization takes INT8 Q/DQ only, no INT32 bias
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
        model = onnx.load(str(out))
        return dedicate_dequantize(model) if place else model

    def close(self) -> None:
        self._tmp.cleanup()


def _session_runner(model: onnx.ModelProto):
    return runtimes.load(runtimes.GRAPH_RUNTIME, model.SerializeToString(), "fp32").run


def quantize_int8(float_model: onnx.ModelProto, request: Int8Request) -> Int8Result:
    """The QDQ graph of ``float_model`` calibrated on the request's samples; with ``min_cosine``, the
    worst blocks fall back to float (by measured sensitivity) until the QDQ graph's cosine to the float
    graph on the request's check inputs meets it."""
    options, batch = request.options, request.batch
    excluded = kept_float(float_model, request)
    quantizer = Int8Quantizer(float_model, request.samples, batch, options)
    try:
        reference = run_batched(_session_runner(float_model), request.check_inputs, batch)

        def cosine(model: onnx.ModelProto) -> float:
            return compare(reference, run_batched(_session_runner(model), request.check_inputs, batch)).cosine

        qdq = quantizer.quantize(excluded)
        achieved = cosine(qdq)
        report = {"method": options.method, "calib_size": len(request.samples),
                  "calib_images": request.samples.distinct, "calib": str(options.calib or "shipped"),
                  "weight_bits": options.resolved_weight_bits, "kept_float": excluded, "cosine_vs_float": achieved,
                  "fallback": [], "sensitivity": []}
        if options.min_cosine is None or achieved >= options.min_cosine:
            warn_if_lossy(achieved)
            return Int8Result(qdq, report)
        sensitivity = block_sensitivity(quantizer, float_model, excluded, request.block_depth, cosine)
        report["sensitivity"] = sensitivity

        def attempt(blocks: list[dict]):
            model = quantizer.quantize(excluded + [n for entry in blocks for n in entry["nodes"]])
            return model, cosine(model)
        qdq, achieved, report["fallback"] = fall_back(sensitivity, attempt, options.min_cosine, qdq, achieved)
        report.update(cosine_vs_float=achieved, met_target=achieved >= options.min_cosine)
        return Int8Result(qdq, report)
    finally:
        quantizer.close()


def fall_back(ranking: list[dict], attempt, min_cosine: float, model, achieved: float):
    """Return the ranked blocks to float one at a time, worst first, until ``attempt(blocks)`` (the quantized model
    with those blocks in float, and its cosine to the float graph) reaches ``min_cosine``; from ``model`` at
    ``achieved``, return (model, cosine, blocks). The one fallback of both INT8 paths (the QDQ graph and
    OpenVINO's NNCF), so the target means the same on both."""
    chosen: list[dict] = []
    with progress.step(f"returning blocks to float, worst first, until cosine {min_cosine}",
                       total=len(ranking)) as returning:
        for entry in ranking:
            chosen.append(entry)
            model, achieved = attempt(chosen)
            returning.advance()
            if achieved >= min_cosine:
                break
    if achieved < min_cosine:
        warnings.warn(LossyInt8Warning(f"every ranked block back in float reaches cosine {achieved:.4f} to the float "
                      f"graph, below --int8-min-cosine {min_cosine}: the rest of the error is outside the blocks "
                      "(try another --calib-method or more --calib images)"))
    return model, achieved, [entry["block"] for entry in chosen]


def block_sensitivity(quantizer: Int8Quantizer, float_model: onnx.ModelProto, excluded: list[str],
                      depth: int, cosine) -> list[dict]:
    """Per block, the error it contributes when it alone is quantized: 1 - cosine to the float graph.

    Worst first. Each block is measured in isolation (every other node float), which ranks blocks by
    their own damage rather than by how it compounds with the rest.
    """
    blocks: dict[str, list[str]] = {}
    for node in float_model.graph.node:
        if node.op_type in QUANTIZED_OPS and node.name not in excluded:
            blocks.setdefault(block_of(node.name, depth), []).append(node.name)
    everything = [n for nodes in blocks.values() for n in nodes] + excluded
    results = []
    with progress.step(f"measuring the INT8 error of each of {len(blocks)} blocks", total=len(blocks)) as measuring:
        for block, nodes in blocks.items():
            others = [n for n in everything if n not in set(nodes)]
            results.append({"block": block, "nodes": nodes, "error": 1.0 - cosine(quantizer.quantize(others))})
            measuring.advance()
    return sorted(results, key=lambda r: -r["error"])
