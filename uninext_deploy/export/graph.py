"""Structural checks on an exported ONNX graph: static shapes, no shape arithmetic, reshape ranks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx
from onnx import numpy_helper

# Ops whose presence after simplification means the graph computes shapes at run time.
SHAPE_ARITHMETIC_OPS = {"Shape", "ConstantOfShape", "Size", "NonZero", "Range"}
MAX_RANK = 8  # TensorRT's limit on tensor rank


@dataclass
class GraphReport:
    nodes: int
    ops: dict[str, int]
    problems: list[str] = field(default_factory=list)


def static_dims(value_info: onnx.ValueInfoProto) -> list[int] | None:
    dims = value_info.type.tensor_type.shape.dim
    if any(not d.HasField("dim_value") for d in dims):
        return None
    return [d.dim_value for d in dims]


def check_graph(model: onnx.ModelProto) -> GraphReport:
    """Node count, op histogram and the static-shape problems of ``model`` (an empty list when clean)."""
    graph = model.graph
    ops = Counter(node.op_type for node in graph.node)
    problems = []
    for vi in list(graph.input) + list(graph.output):
        if static_dims(vi) is None:
            problems.append(f"{vi.name} has a dynamic shape")
    for op in sorted(SHAPE_ARITHMETIC_OPS & set(ops)):
        problems.append(f"{ops[op]} {op} node(s) compute shapes at run time")
    consts = {init.name: init for init in graph.initializer}
    consts.update({n.output[0]: n.attribute[0].t for n in graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        shape = consts.get(node.input[1])
        if shape is None:
            problems.append(f"Reshape {node.name} takes a computed shape")
        elif numpy_helper.to_array(shape).size > MAX_RANK:
            problems.append(f"Reshape {node.name} makes a rank-{numpy_helper.to_array(shape).size} tensor "
                            f"(TensorRT allows {MAX_RANK})")
    inferred = onnx.shape_inference.infer_shapes(model)
    for vi in inferred.graph.value_info:
        rank = len(vi.type.tensor_type.shape.dim)
        if rank > MAX_RANK:
            problems.append(f"tensor {vi.name} has rank {rank} (TensorRT allows {MAX_RANK})")
    return GraphReport(nodes=len(graph.node), ops=dict(sorted(ops.items())), problems=problems)
