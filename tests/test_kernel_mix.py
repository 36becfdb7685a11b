"""Kernel mix: how many Conv/MatMul layers run as integer kernels, and where the time goes, per runtime."""

import pytest

from uninext_deploy import api
from uninext_deploy.kernel_mix import KINDS, kernel_mix, kind_of

TIMING = api.TimingOptions(warmup=1, iters=2)


def _mix(tmp_path, target, precision):
    report = api.profile("test_convmlp", target, precision=precision, timing=TIMING, per_layer=True, eager=False,
                         out=tmp_path, int8=api.Int8Options(calib_size=4))
    return report, report.kernels


def test_kinds_of_ort_and_openvino_layers():
    assert kind_of({"op": "QLinearConv"}) == "integer" and kind_of({"op": "FusedConv"}) == "float matmul"
    assert kind_of({"op": "DequantizeLinear"}) == "quantize" and kind_of({"op": "ReorderInput"}) == "layout"
    assert kind_of({"op": "Convolution", "kernel": "brgconv_avx512_1x1_I8"}) == "integer"
    assert kind_of({"op": "Convolution", "kernel": "brgconv_avx512_1x1_f32"}) == "float matmul"
    assert kind_of({"op": "Subgraph", "kernel": "jit_avx512_i8"}) == "other float"  # no Conv/MatMul: not counted


def test_fp32_graph_has_no_integer_kernel(tmp_path):
    report, mix = _mix(tmp_path, "ort", "fp32")
    assert mix.integer_matmuls == 0 and mix.float_matmuls > 5 and mix.ms["quantize"] == 0
    assert mix.total_ms == pytest.approx(sum(layer["ms"] for layer in report.layers), rel=1e-3)
    assert report.as_dict()["kernels"]["float_matmuls"] == mix.float_matmuls


@pytest.mark.parametrize("target", ["ort", "openvino"])
def test_int8_runs_its_convs_as_integer_kernels_and_names_the_float_ones(tmp_path, target):
    if target == "openvino":
        pytest.importorskip("openvino", reason="openvino is an optional runtime: pip install '.[openvino]'")
    _, mix = _mix(tmp_path, target, "int8")
    assert mix.integer_matmuls > 5 and mix.ms["integer"] > 0
    # the classifier stays float by default: a float layer the mix names (OpenVINO names it by its output)
    assert mix.float_matmuls >= 1 and any("head" in name or name == "logits" for name in mix.float_matmul_layers)
    assert set(mix.ms) == set(KINDS) and "in integer kernels" in mix.describe()


def test_mix_of_a_handmade_profile():
    mix = kernel_mix([{"name": "a", "op": "QLinearConv", "ms": 3.0}, {"name": "b", "op": "Conv", "ms": 1.0},
                      {"name": "c", "op": "Conv", "ms": 2.0}, {"name": "d", "op": "QuantizeLinear", "ms": 4.0}])
    assert (mix.integer_matmuls, mix.float_matmuls, mix.float_matmul_layers) == (1, 2, ("c", "b"))
    assert mix.share("quantize") == pytest.approx(0.4)
