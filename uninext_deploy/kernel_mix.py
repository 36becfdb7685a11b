"""Where an artifact's time goes, by kind of kernel: the measure of INT8 placement.

From a per-layer profile (ONNX Runtime's trace or OpenVINO's performance counters, after the runtime's own
fusions): how many Conv / MatMul / Gemm layers run as integer kernels and how many in float, and the share of
time in integer kernels, float Conv / MatMul, quantize / dequantize, layout (transposes, reorders, reshapes)
and the other float ops. A well-placed INT8 graph has its Conv / MatMul time in integer kernels and little in
quantize / dequantize; what stays is a float island worth a look.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("integer", "float matmul", "quantize", "layout", "other float")
# ONNX Runtime op types after its QDQ fusions
ORT_INTEGER = {"QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat", "ConvInteger", "MatMulInteger",
               "DynamicQuantizeMatMul", "QGemm", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
               "QLinearSigmoid", "QLinearConcat", "QLinearSoftmax", "QLinearAveragePool"}
ORT_MATMUL = {"QLinearConv", "QLinearMatMul", "MatMulIntegerToFloat", "ConvInteger", "MatMulInteger",
              "DynamicQuantizeMatMul", "QGemm", "Conv", "FusedConv", "NhwcFusedConv", "MatMul", "FusedMatMul",
              "Gemm", "FusedGemm", "NchwcConv"}
# OpenVINO CPU plugin layer types
OV_MATMUL = {"Convolution", "GroupConvolution", "MatMul", "FullyConnected", "FullyConnectedQuantizedLegacy",
             "Deconvolution"}
QUANTIZE = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "FakeQuantize"}
LAYOUT = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "ReorderInput", "ReorderOutput", "Reorder",
          "Split", "Concat", "Gather", "Slice", "Identity", "Expand"}


@dataclass(frozen=True)
class KernelMix:
    integer_matmuls: int  # Conv / MatMul / Gemm layers running as integer kernels
    float_matmuls: int  # ... and in float
    ms: dict  # kind -> milliseconds per run
    float_matmul_layers: tuple[str, ...]  # the float Conv / MatMul layers, slowest first

    @property
    def total_ms(self) -> float:
        return sum(self.ms.values())

    def share(self, kind: str) -> float:
        return self.ms[kind] / self.total_ms if self.total_ms else 0.0

    def as_dict(self) -> dict:
        return {"integer_matmuls": self.integer_matmuls, "float_matmuls": self.float_matmuls, "ms": self.ms,
                "float_matmul_layers": list(self.float_matmul_layers)}

    def describe(self) -> str:
        shares = ", ".join(f"{kind} {100 * self.share(kind):.0f} %" for kind in KINDS)
        return (f"kernels: {self.integer_matmuls} of {self.integer_matmuls + self.float_matmuls} Conv/MatMul/Gemm "
                f"layers in integer kernels; time: {shares}")


def kind_of(layer: dict) -> str:
    """One of KINDS for a per-layer profile entry (``op``, and ``kernel`` where the runtime names one)."""
    op, kernel = layer["op"], layer.get("kernel")
    if kernel is not None:  # OpenVINO: the kernel's name carries the precision it computes in
        integer = any(tag in kernel for tag in ("I8", "i8", "u8", "U8"))
        if op in OV_MATMUL:
            return "integer" if integer else "float matmul"
    elif op in ORT_INTEGER:
        return "integer"
    elif op in ORT_MATMUL:
        return "float matmul"
    if op in QUANTIZE:
        return "quantize"
    return "layout" if op in LAYOUT else "other float"


def kernel_mix(layers: list[dict]) -> KernelMix:
    """The mix of a per-layer profile (each entry: ``name``, ``op``, ``ms``, OpenVINO's also ``kernel``)."""
    ms = dict.fromkeys(KINDS, 0.0)
    integer_matmuls, floats = 0, []
    for layer in layers:
        kind = kind_of(layer)
        ms[kind] += layer["ms"]
        integer_matmuls += kind == "integer" and layer["op"] in ORT_MATMUL | OV_MATMUL
        if kind == "float matmul":
            floats.append(layer)
    floats.sort(key=lambda layer: -layer["ms"])
    return KernelMix(integer_matmuls, len(floats), {k: round(v, 4) for k, v in ms.items()},
                     tuple(layer["name"] for layer in floats))
