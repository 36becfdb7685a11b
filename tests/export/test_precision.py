"""FP16-typed and QDQ INT8 graphs: their structure, and parity on ONNX Runtime for ConvMLP-S and UniNeXt-T."""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from uninext_deploy import api
from uninext_deploy.errors import UserError
from uninext_deploy.export.precision import block_of, quantize_int8
from uninext_deploy.options import Int8Options
from uninext_deploy.pipeline import build_model, int8_request


# UniNeXt-T INT8 at 160 px on 16 samples keeps this test short; its memory no longer depends on them (calibration
# streams: 1.4 GB peak for the whole export at 224 on 32 samples, where ORT's one-pass calibrator took 8.4 GB).
# Not 128 px: on a CPU without VNNI (AMD EPYC Zen 3, AVX2), whose 7-bit weights lose a little, 128 px reached
# cosine 0.9897 on 16 samples and 0.9919 on 32; 160 px on 16 reached 0.9956, and the default 224 on 32 0.9982.
SIZES = {"convmlp_s": (None, 32), "uninext_t": (160, 16)}


# the default run: INT8 of the default model and FP16 of ConvMLP-S; the other two under the slow marker (30 s on
# 2 cores; the ARM, optimize and no-VNNI tests run ConvMLP-S INT8, the feature-map tests FP16 attention)
@pytest.mark.parametrize("name, precision", [
    ("uninext_t", "int8"), ("convmlp_s", "fp16"),
    pytest.param("uninext_t", "fp16", marks=pytest.mark.slow), pytest.param("convmlp_s", "int8", marks=pytest.mark.slow)])
def test_passes_its_tolerance_on_ort(tmp_path, name, precision):
    size, calib = SIZES[name]
    report = api.parity(name, "ort", precision=precision, batches=(1,), input_size=size, inputs=api.Inputs(random=2),
                        int8=Int8Options(calib_size=calib), out=tmp_path)
    assert report.passed, report.as_dict()


@pytest.fixture(scope="module")
def fp16_graph(tmp_path_factory):
    artifact = api.export("convmlp_s", "ort", precision="fp16", input_size=64,
                          out=tmp_path_factory.mktemp("fp16") / "a")
    return artifact, onnx.load(str(artifact.file("model")))


def test_fp16_graph_keeps_io_and_normalisation_in_fp32(fp16_graph):
    artifact, model = fp16_graph
    for value in list(model.graph.input) + list(model.graph.output):
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT
    types = {init.name: init.data_type for init in model.graph.initializer}
    layer_norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert layer_norms and all(types[n.input[1]] == TensorProto.FLOAT for n in layer_norms)
    matmul_weights = [types[i] for n in model.graph.node if n.op_type in ("MatMul", "Conv") for i in n.input if i in types]
    assert matmul_weights and all(t == TensorProto.FLOAT16 for t in matmul_weights)
    assert "LayerNormalization" in artifact.manifest["precision_graph"]["fp32_ops"]


@pytest.fixture(scope="module")
def int8_graph(tmp_path_factory):
    """UniNet-B0's QDQ graph as TensorRT gets it (ORT's artifact keeps its depthwise blocks' convs float)."""
    folder = tmp_path_factory.mktemp("int8")
    float_model = onnx.load(str(api.export("uninet_b0", "ort", input_size=64, out=folder / "fp32").file("model")))
    request = int8_request(build_model(api.ModelOptions("uninet_b0", input_size=64)), Int8Options(calib_size=8))
    model = quantize_int8(float_model, request).model
    onnx.save(model, str(folder / "qdq.onnx"))
    return folder / "qdq.onnx", model


def _dequantized_inputs(model):
    """Names of tensors produced by a DequantizeLinear node."""
    return {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}


def test_int8_graph_is_symmetric_int8_with_zero_points_0(int8_graph):
    _, model = int8_graph
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 50
    for node in qdq:
        zero_point = inits[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any()
    per_channel = [inits[n.input[1]] for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in inits
                   and inits[n.input[0]].dtype == np.int8]
    assert per_channel and all(s.ndim == 1 and s.size > 1 for s in per_channel if s.ndim)


def test_int8_quantizes_weights_except_se_gates_classifier_and_attention(int8_graph):
    _, model = int8_graph
    dq = _dequantized_inputs(model)
    weights = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "LayerNormalization":
            assert set(node.input[1:]) <= weights  # float scale and bias, not dequantized ones
        if node.op_type == "Mul" and any("gamma_" in i for i in node.input):
            assert any(i in weights and "gamma_" in i for i in node.input)  # layer scale stays a float weight
        if node.op_type in ("Conv", "MatMul", "Gemm"):
            weight_quantized = node.input[1] in dq
            in_se = "/b2/b2.3/" in node.name
            is_classifier = node.name.startswith("/classifier/")
            attention = node.op_type == "MatMul" and node.input[1] not in weights and not weight_quantized
            assert weight_quantized == (not (in_se or is_classifier or attention)), node.name


def test_ort_keeps_the_convs_of_depthwise_blocks_float_and_quantizes_the_rest(tmp_path):
    artifact = api.export("uninet_b0", "ort", precision="int8", input_size=64, int8=Int8Options(calib_size=8),
                          out=tmp_path / "a")
    model = onnx.load(str(artifact.file("model")))
    dq = _dequantized_inputs(model)
    grouped = {block_of(n.name, 2) for n in model.graph.node if n.op_type == "Conv"
               and next((a.i for a in n.attribute if a.name == "group"), 1) > 1}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(grouped) > 10 and {"stem.0", "head.0"}.isdisjoint(grouped)
    for node in convs:
        assert (node.input[1] in dq) == (block_of(node.name, 2) not in grouped), node.name
    assert sum(n.op_type == "MatMul" and n.input[1] in dq for n in model.graph.node) > 10  # attention blocks' linears


def test_only_conv_and_matmul_run_as_int8_kernels(int8_graph, tmp_path):
    path, _ = int8_graph
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx")).graph.node
    ops = Counter(n.op_type for n in optimized)
    dequantized = {o for n in optimized if n.op_type == "DequantizeLinear" for o in n.output}
    float_with_int8_input = [n.name for n in optimized if n.op_type in ("Conv", "MatMul", "Gemm", "FusedConv")
                             and dequantized & set(n.input)]
    # placement.dedicate_dequantize lets ORT fuse them: before it, 29 of UniNet-B1's 62 quantized Convs ran in
    # float; after it 2 still do (the first attention block's q.0 and residual.0, for a reason ORT does not log)
    integer = ops["QLinearConv"] + ops["QLinearMatMul"]
    assert len(float_with_int8_input) <= 0.05 * integer, float_with_int8_input
    assert ops["QLinearConv"] > 10 and ops["QLinearMatMul"] > 10
    int8_kernels = {op for op in ops if op.startswith("QLinear") or "Integer" in op}
    assert int8_kernels == {"QLinearConv", "QLinearMatMul"}
    for float_op in ("Softmax", "LayerNormalization", "Gelu", "Clip", "Div", "Mul"):
        assert ops[float_op] > 0, float_op  # SE hard-sigmoid (Clip, Div), layer scale (Mul) and the rest


@pytest.mark.parametrize("target", ["ort", "openvino"])
def test_7_bit_weights_stay_within_64_steps(tmp_path, target):
    """--int8-weight-bits 7 (for x86 CPUs without VNNI): every INT8 weight within [-64, 64], on the QDQ graph (ORT's
    reduce_range) and on the IR (NNCF's overflow fix in every layer), and said in the manifest."""
    artifact = api.export("test_convmlp", target, precision="int8", out=tmp_path / "a",
                          int8=Int8Options(calib_size=4, weight_bits=7))
    if target == "ort":
        model = onnx.load(str(artifact.file("model")))
        weights = [numpy_helper.to_array(t) for t in model.graph.initializer
                   if t.data_type == TensorProto.INT8 and len(t.dims) > 1]
    else:
        import openvino as ov

        model = ov.Core().read_model(str(artifact.file("model")))
        weights = [op.get_data() for op in model.get_ops()
                   if op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8]
    assert len(weights) > 5 and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 64
    assert artifact.manifest["precision_graph"]["weight_bits"] == 7
    # the export's peak resident memory (this process's since the export began: torch and the runtimes loaded)
    peak = artifact.manifest["precision_graph"]["peak_rss_mb"]
    assert 200 < peak < 4000
    assert any(line.startswith(f"peak resident memory of the export: {peak} MB") for line in api.describe(artifact))


def test_classifier_can_be_quantized(tmp_path):
    artifact = api.export("convmlp_s", "ort", precision="int8", input_size=64, out=tmp_path / "a",
                          int8=Int8Options(calib_size=4, quantize_classifier=True))
    model = onnx.load(str(artifact.file("model")))
    head = next(n for n in model.graph.node if n.name == "/head/Gemm")
    assert _dequantized_inputs(model) & set(head.input)


def test_min_cosine_falls_back_worst_blocks_first_and_reports_them(tmp_path):
    artifact = api.export("test_convmlp", "ort", precision="int8", out=tmp_path / "a",
                          int8=Int8Options(calib_size=4, method="minmax", min_cosine=0.9999))
    report = artifact.manifest["precision_graph"]
    errors = [e["error"] for e in report["sensitivity"]]
    assert len(errors) >= 4 and errors == sorted(errors, reverse=True)
    assert report["fallback"] == [e["block"] for e in report["sensitivity"][:len(report["fallback"])]]
    assert report["fallback"] and (report["cosine_vs_float"] >= 0.9999) == report["met_target"]


def test_bad_int8_options_are_clear():
    with pytest.raises(UserError, match="unknown calibration method 'kl'"):
        Int8Options(method="kl")
    with pytest.raises(UserError, match="--int8-min-cosine must be above 0 and at most 1"):
        Int8Options(min_cosine=2)


def test_fall_back_stops_at_the_first_block_set_that_meets_the_target_and_warns_when_none_does():
    from uninext_deploy.export.precision import LossyInt8Warning, fall_back

    ranking = [{"block": b} for b in ("a", "b", "c")]
    gains = {1: 0.98, 2: 0.995, 3: 0.999}
    attempt = lambda blocks: (f"model-{len(blocks)}", gains[len(blocks)])
    assert fall_back(ranking, attempt, 0.99, "model-0", 0.97) == ("model-2", 0.995, ["a", "b"])
    with pytest.warns(LossyInt8Warning, match="every ranked block back in float reaches cosine 0.9990"):
        assert fall_back(ranking, attempt, 0.9999, "model-0", 0.97) == ("model-3", 0.999, ["a", "b", "c"])
    assert fall_back([], attempt, 0.99, "model-0", 0.97)[:2] == ("model-0", 0.97)  # nothing to return: as it was
