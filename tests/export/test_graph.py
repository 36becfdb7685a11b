"""The static-shape checker flags planted problems in small hand-made graphs."""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from uninext_deploy.export.graph import check_graph


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _tensor(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_clean_static_graph_passes():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_tensor("x", [1, 3, 8, 8])], [_tensor("y", [1, 3, 8, 8])])
    report = check_graph(model)
    assert report.problems == [] and report.nodes == 1 and report.ops == {"Relu": 1}


def test_dynamic_dimension_is_flagged():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [_tensor("x", ["batch", 3])], [_tensor("y", ["batch", 3])])
    assert any("x has a dynamic shape" in p for p in check_graph(model).problems)


def test_shape_arithmetic_is_flagged():
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["y"])]
    problems = check_graph(_model(nodes, [_tensor("x", [2, 3])], [_tensor("y", [2, 3])])).problems
    assert any("Shape node" in p for p in problems)
    assert any("computed shape" in p for p in problems)


def test_tensor_rank_is_not_a_static_shape_problem():
    """TensorRT's rank limit belongs to the TensorRT check (tests/backends/test_tensorrt.py), not every export."""
    shape = numpy_helper.from_array(np.array([1, 1, 1, 1, 1, 1, 1, 2, 3], dtype=np.int64), "shape")
    model = _model([helper.make_node("Reshape", ["x", "shape"], ["y"], name="deep")], [_tensor("x", [2, 3])],
                   [_tensor("y", [1, 1, 1, 1, 1, 1, 1, 2, 3])], [shape])
    assert check_graph(model).problems == []
