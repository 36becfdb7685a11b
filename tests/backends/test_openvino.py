"""OpenVINO behind the same Backend interface: parity per precision, explicit precision, clear errors."""

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from uninext_deploy import api
from uninext_deploy.artifact import Artifact
from uninext_deploy.backends import get_backend
from uninext_deploy.errors import UserError
from uninext_deploy.export.precision import block_of
from uninext_deploy.kernel_mix import kind_of
from uninext_deploy.models import get_spec

pytest.importorskip("openvino", reason="openvino is an optional runtime: pip install '.[openvino]'")


# UniNeXt-T (attention) in f32 and NNCF INT8 at 128 px under the slow marker (60 s on 2 cores; the default run
# has test_uninext's attention on OpenVINO through the C++ and feature-map tests); its f16 path is ConvMLP-S's
@pytest.mark.parametrize("name, size, precision", [
    ("convmlp_s", None, "fp32"), ("convmlp_s", None, "fp16"), ("convmlp_s", None, "int8"),
    pytest.param("uninext_t", 128, "fp32", marks=pytest.mark.slow),
    pytest.param("uninext_t", 128, "int8", marks=pytest.mark.slow)])
def test_passes_parity(tmp_path, name, size, precision):
    report = api.parity(name, "openvino", precision=precision, batches=(1,), input_size=size,
                        inputs=api.Inputs(random=2), int8=api.Int8Options(calib_size=16), out=tmp_path)
    assert report.passed, report.as_dict()
    if precision == "fp32":
        assert report.runs[0].images.rel_max_abs < 1e-5  # f32 really is f32, not the bf16 default


@pytest.fixture(scope="module")
def fp32_ir(tmp_path_factory):
    return api.export("convmlp_s", "ov", input_size=64, out=tmp_path_factory.mktemp("ov") / "a")


def test_ir_artifact_layout(fp32_ir):
    files = fp32_ir.manifest["files"]
    assert {files[n]["role"] for n in files} == {"model", "weights", "onnx", "golden"}
    assert fp32_ir.manifest["target"] == "openvino" and fp32_ir.manifest["runtime"]["openvino"]


def test_inference_precision_is_explicit_and_recorded(fp32_ir, tmp_path):
    runner = get_backend("openvino").open(fp32_ir.file("model"), "fp32", threads=1, cache_dir=tmp_path / "cache")
    info = runner.info()
    assert info["inference_precision"] == "f32" and info["threads"] == 1
    assert any((tmp_path / "cache").iterdir())  # compiled-model cache written
    fp16 = api.export("convmlp_s", "ov", precision="fp16", input_size=64, out=tmp_path / "fp16")
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    expected = "f16" if "FP16" in capabilities else "bf16" if "BF16" in capabilities else "f32"
    assert get_backend("openvino").load(fp16).info()["inference_precision"] == expected


def test_fp16_ir_has_compressed_weights(fp32_ir, tmp_path):
    fp16 = api.export("convmlp_s", "ov", precision="fp16", input_size=64, out=tmp_path / "fp16")
    assert fp16.manifest["files"]["model.bin"]["bytes"] < 0.6 * fp32_ir.manifest["files"]["model.bin"]["bytes"]


def test_per_layer_profile_names_executed_layers(fp32_ir):
    runner = get_backend("openvino").load(fp32_ir, threads=1)
    layers = runner.per_layer_profile(np.zeros(fp32_ir.input_shape, np.float32), runs=2)
    assert len(layers) > 10 and layers[0]["ms"] >= layers[-1]["ms"]
    assert {"Convolution", "MVN"} <= {layer["op"] for layer in layers}


def test_int8_keeps_se_gates_and_classifier_float(tmp_path):
    artifact = api.export("test_uninet", "ov", precision="int8", out=tmp_path / "a",
                          int8=api.Int8Options(calib_size=4))
    report = artifact.manifest["precision_graph"]
    # the tiny model and 4 calibration samples: a structural test (accuracy: test_passes_parity)
    assert report["quantizer"].startswith("nncf") and 0.8 < report["cosine_vs_float"] <= 1
    assert any("/b2/b2.3/" in name for name in report["kept_float"])
    assert any(name.startswith("/classifier/") for name in report["kept_float"])


def test_int8_leaves_unquantized_what_the_cpu_plugin_would_run_in_f32(tmp_path):
    import openvino as ov

    from uninext_deploy.backends.openvino import compile_f32, float_in_plugin

    artifact = api.export("test_uninext", "ov", precision="int8", out=tmp_path / "a",
                          int8=api.Int8Options(calib_size=4))
    report = artifact.manifest["precision_graph"]
    # UniNeXt's depthwise convs read tokens through a Transpose the plugin does not fold into INT8
    assert any("/mlp/dwconv/" in name for name in report["float_in_plugin"])
    model = ov.Core().read_model(str(artifact.file("model")))
    kept = set(report["kept_float"] + report["float_in_plugin"])
    assert float_in_plugin(model, compile_f32(model), kept) == []
    assert "FakeQuantize" not in {op.get_type_name() for op in model.get_ops()
                                  if "/mlp/dwconv/Transpose" in op.get_friendly_name()}


def test_int8_fully_connected_layers_carry_their_bias_and_activation(tmp_path):
    """ConvMLP's channels-last MLPs run on tokens: the CPU plugin fuses an INT8 FullyConnected's bias (and GELU)
    only on inputs of rank 3 or less; on rank 4 the bias was a separate f32 Eltwise."""
    import openvino as ov

    from uninext_deploy.backends.openvino import compile_f32

    artifact = api.export("test_convmlp", "ov", precision="int8", out=tmp_path / "a",
                          int8=api.Int8Options(calib_size=4))
    compiled = compile_f32(ov.Core().read_model(str(artifact.file("model"))))
    fused = {}
    for layer in compiled.get_runtime_model().get_ordered_ops():
        info = {key: value.astype(str) for key, value in layer.get_rt_info().items()}
        if info["layerType"] == "FullyConnected" and info["runtimePrecision"] == "i8":
            fused[layer.get_friendly_name()] = info["originalLayersNames"].split(",")
    assert len(fused) >= 6  # two MLPs of two FCs in each of the three stages' blocks
    assert all(any(name.endswith(("/fc1/Add", "/fc2/Add/fq_output_0", "/fc2/Add")) for name in names)
               for names in fused.values()), fused
    assert all(any(name.endswith("/act/Gelu") for name in names) for names in fused.values()
               if any("/fc1/" in name for name in names)), fused


def test_min_cosine_falls_back_worst_blocks_first_as_on_the_qdq_graph(tmp_path):
    artifact = api.export("test_convmlp", "ov", precision="int8", out=tmp_path / "a",
                          int8=api.Int8Options(calib_size=4, min_cosine=0.992))
    report = artifact.manifest["precision_graph"]
    errors = [e["error"] for e in report["sensitivity"]]
    assert len(errors) >= 4 and errors == sorted(errors, reverse=True)
    assert report["fallback"] == [e["block"] for e in report["sensitivity"][:len(report["fallback"])]]
    assert report["fallback"] and (report["cosine_vs_float"] >= 0.992) == report["met_target"]
    assert all("nodes" not in entry for entry in report["sensitivity"])  # working state stays out of the manifest
    # the block returned first runs integer kernels without the target and none with it (the CPU plugin's
    # executed layers: where NNCF puts a FakeQuantize depends on its placement, what runs is what counts)
    plain = api.export("test_convmlp", "ov", precision="int8", out=tmp_path / "b", int8=api.Int8Options(calib_size=4))
    block = report["fallback"][0]
    assert _integer_layers(plain)[block] > 0 and _integer_layers(artifact)[block] == 0


def _integer_layers(artifact) -> Counter:
    """Executed Conv/MatMul layers computing in INT8, per block."""
    depth = get_spec(artifact.manifest["model"]["name"]).block_depth
    runner = get_backend("openvino").load(artifact, threads=1)
    layers = runner.per_layer_profile(np.zeros(artifact.input_shape, np.float32), runs=1)
    return Counter(block_of(layer["name"], depth) for layer in layers if kind_of(layer) == "integer")


def test_a_corrupt_ir_is_one_clear_error(fp32_ir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(fp32_ir.path, broken)
    (broken / "model.xml").write_text("<net>not really")
    with pytest.raises(UserError, match="OpenVINO cannot load .*model.xml: .*; re-export the artifact"):
        get_backend("openvino").load(Artifact.open(broken))


def test_missing_openvino_package_is_one_clear_line():
    # a fresh interpreter in which `import openvino` fails, as on a machine without it
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from uninext_deploy.backends import get_backend\n"
            "from uninext_deploy.errors import UserError\n"
            "try:\n    get_backend('openvino')\nexcept UserError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == ("openvino is not installed; install it with `pip install -c constraints.txt "
                                     "openvino nncf` to use --target openvino")
