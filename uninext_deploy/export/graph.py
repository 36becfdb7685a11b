"""Structural facts of an exported ONNX graph: static shapes, no shape arithmetic, module scopes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx

# Ops whose presence after simplification means the graph computes shapes at run time.
SHAPE_ARITHMETIC_OPS = {"Shape", "ConstantOfShape", "Size", "NonZero", "Range"}


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
        if node.op_type == "Reshape" and node.input[1] not in consts:
            problems.append(f"Reshape {node.name} takes a computed shape")
    return GraphReport(nodes=len(graph.node), ops=dict(sorted(ops.items())), problems=problems)

