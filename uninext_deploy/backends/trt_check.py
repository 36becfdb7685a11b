"""Will TensorRT's ONNX parser take this graph? Checked here, without TensorRT.

Facts from onnx-tensorrt's operator support matrix (docs/operators.md per release): the ops our graphs
use and the first TensorRT version that parses each, the highest opset per release, Q/DQ restrictions
(zero points 0), TensorRT's rank limit of 8, static shapes, and INT64 use (older parsers cast it down).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import UserError
from ..export.graph import static_dims

MAX_RANK = 8  # TensorRT's limit on tensor rank
KNOWN_MAJORS = (8, 11)  # the releases whose parser facts are below

# op -> first TensorRT version whose ONNX parser supports it (the ops the three families export to).
MIN_VERSION = {
    **{op: (8, 0) for op in (
        "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv", "Div", "Erf",
        "Flatten", "Gather", "Gemm", "GlobalAveragePool", "HardSigmoid", "Identity", "MatMul", "MaxPool", "Mul",
        "Pad", "Pow", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Sigmoid", "Slice", "Softmax", "Split",
        "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "QuantizeLinear", "DequantizeLinear")},
    "LayerNormalization": (8, 6),
    "Gelu": (10, 0),
}
# TensorRT version -> highest ONNX opset its parser takes
MAX_OPSET = [((10, 0), 20), ((9, 2), 19), ((8, 5), 17), ((8, 0), 13)]


def parse_version(text: str) -> tuple[int, int]:
    """"10.3" -> (10, 3), or one UserError asking for MAJOR.MINOR."""
    from ..device.runtimes import version_tuple

    parts = version_tuple(text.strip())
    if not parts or not text.strip()[:1].isdigit():
        raise UserError(f"cannot read TensorRT version {text!r}; write it as MAJOR.MINOR, e.g. 10.3")
    if not KNOWN_MAJORS[0] <= parts[0] <= KNOWN_MAJORS[1]:
        raise UserError(f"--trt-version {text}: the parser checks know TensorRT {KNOWN_MAJORS[0]}.0 to "
                        f"{KNOWN_MAJORS[1]}.x; pass one of those, e.g. 10.3")
    return parts[0], parts[1] if len(parts) > 1 else 0


def max_opset(version: tuple[int, int]) -> int:
    return next(opset for since, opset in MAX_OPSET if version >= since)


@dataclass
class TrtCheck:
    version: tuple[int, int]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {"tensorrt": ".".join(map(str, self.version)), "errors": self.errors, "warnings": self.warnings}


def check_for_tensorrt(model: onnx.ModelProto, version: tuple[int, int]) -> TrtCheck:
    """Problems TensorRT ``version``'s ONNX parser would have with ``model``, naming the nodes."""
    check = TrtCheck(version)
    tag = ".".join(map(str, version))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset > max_opset(version):
        check.errors.append(f"opset {opset} is above TensorRT {tag}'s {max_opset(version)}; export with --opset "
                            f"{max_opset(version)}")
    for vi in list(model.graph.input) + list(model.graph.output):
        if static_dims(vi) is None:
            check.errors.append(f"graph tensor {vi.name} has a dynamic shape; export with a fixed --batch/--input-size")
    consts = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        where = f"{node.op_type} {node.name}"
        since = MIN_VERSION.get(node.op_type)
        if node.domain not in ("", "ai.onnx"):
            check.errors.append(f"{where}: custom domain {node.domain!r} needs a TensorRT plugin")
        elif since is None:
            check.errors.append(f"{where}: op not in the TensorRT parser support this check knows (onnx-tensorrt "
                                "docs/operators.md); verify it there or pass --force")
        elif version < since:
            check.errors.append(f"{where}: needs TensorRT >= {since[0]}.{since[1]} (target {tag})")
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2] in consts:
            zero_point = numpy_helper.to_array(consts[node.input[2]])
            if zero_point.any():
                check.errors.append(f"{where}: zero point must be 0 for TensorRT")
            if zero_point.dtype not in (np.int8,):
                check.errors.append(f"{where}: {zero_point.dtype} quantization; TensorRT takes INT8 Q/DQ here")
        if node.op_type == "Reshape" and node.input[1] in consts:
            rank = numpy_helper.to_array(consts[node.input[1]]).size
            if rank > MAX_RANK:
                check.errors.append(f"{where}: rank-{rank} reshape; TensorRT allows rank <= {MAX_RANK}")
    int64 = [i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT64
             and not any(i.name == n.input[1] for n in model.graph.node if n.op_type == "Reshape")]
    if int64 and version < (10, 0):
        check.warnings.append(f"{len(int64)} INT64 initializer(s) (e.g. {int64[0]}) will be cast to INT32 by "
                              f"TensorRT {tag}")
    inferred = onnx.shape_inference.infer_shapes(model)
    for vi in inferred.graph.value_info:
        if len(vi.type.tensor_type.shape.dim) > MAX_RANK:
            check.errors.append(f"tensor {vi.name} has rank {len(vi.type.tensor_type.shape.dim)}; TensorRT allows "
                                f"rank <= {MAX_RANK}")
    return check
