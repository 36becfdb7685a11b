"""Q/DQ placement: a shared DequantizeLinear is split per reader, float readers read float."""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from uninext_deploy.export.placement import dedicate_dequantize


def _residual_graph() -> onnx.ModelProto:
    """x -> Q -> DQ, read by two Convs and a skip Add; conv_a's output -> Q -> DQ, read by conv_c and a Relu."""
    rng = np.random.default_rng(0)
    weight = lambda name: [numpy_helper.from_array(rng.integers(-127, 128, (4, 4, 1, 1), dtype=np.int8), name),
                           numpy_helper.from_array(np.full(4, 0.01, np.float32), f"{name}_scale"),
                           numpy_helper.from_array(np.zeros(4, np.int8), f"{name}_zero")]
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z")]
    nodes = []
    for w in ("wa", "wb", "wc"):
        inits += weight(w)
        nodes.append(helper.make_node("DequantizeLinear", [w, f"{w}_scale", f"{w}_zero"], [f"{w}_f"], axis=0, name=f"dq_{w}"))
    nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["x_q"], name="q_x"),
              helper.make_node("DequantizeLinear", ["x_q", "s", "z"], ["x_dq"], name="dq_x"),
              helper.make_node("Conv", ["x_dq", "wa_f"], ["a"], name="conv_a"),
              helper.make_node("Conv", ["x_dq", "wb_f"], ["b"], name="conv_b"),
              helper.make_node("Add", ["x_dq", "b"], ["skip"], name="skip_add"),
              helper.make_node("QuantizeLinear", ["a", "s", "z"], ["a_q"], name="q_a"),
              helper.make_node("DequantizeLinear", ["a_q", "s", "z"], ["a_dq"], name="dq_a"),
              helper.make_node("Conv", ["a_dq", "wc_f"], ["c"], name="conv_c"),
              helper.make_node("Relu", ["a_dq"], ["r"], name="relu"),
              helper.make_node("Sum", ["skip", "c", "r"], ["y"], name="sum")]
    shape = [1, 4, 3, 3]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _readers(model, name):
    return [n.name for n in model.graph.node if name in n.input]


def test_each_activation_dequantize_feeds_one_integer_op_and_float_ops_read_float():
    model = dedicate_dequantize(_residual_graph())
    onnx.checker.check_model(model)
    writer = {o: n for n in model.graph.node for o in n.output}
    activation_dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in writer]
    assert Counter(n.input[0] for n in activation_dqs) == {"x_q": 2, "a_q": 2}
    for dq in activation_dqs:
        assert len(_readers(model, dq.output[0])) == 1
    assert "x" in next(n for n in model.graph.node if n.name == "skip_add").input  # the skip reads the float input
    relu = next(n for n in model.graph.node if n.name == "relu")
    assert writer[relu.input[0]].op_type == "DequantizeLinear"  # a Conv wrote it: its output Q stays (ORT fuses on it)


def test_the_skip_alone_changes_numerically():
    """Conv readers see the same rounded tensor as before; only the skip Add now adds the unrounded input."""
    original, placed = _residual_graph(), dedicate_dequantize(_residual_graph())
    x = np.random.default_rng(1).normal(size=(1, 4, 3, 3)).astype(np.float32)
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    rounded = np.clip(np.round(x / 0.05), -128, 127) * 0.05
    np.testing.assert_allclose(run(placed) - run(original), x - rounded, atol=1e-5)
