"""TensorRT: compatibility check, build scripts and export folders are verified here; engines only where
TensorRT and a CUDA GPU exist (those tests skip with the reason otherwise, never with a fake)."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from uninext_deploy import api
from uninext_deploy.device import build_engine as trt_build
from uninext_deploy.backends.tensorrt import build_script, tensorrt_unavailable
from uninext_deploy.errors import UserError
from uninext_deploy.backends.trt_check import check_for_tensorrt

NO_ENGINE = tensorrt_unavailable()


def _graph(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _t(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_check_flags_an_unsupported_op():
    model = _graph([helper.make_node("Unique", ["x"], ["y"], name="uniq")], [_t("x", [4])], [_t("y", [4])])
    assert any("Unique uniq" in e for e in check_for_tensorrt(model, (10, 3)).errors)


def test_check_flags_a_rank_9_reshape_and_a_dynamic_dimension():
    shape = numpy_helper.from_array(np.array([1] * 7 + [2, 3], dtype=np.int64), "shape")
    model = _graph([helper.make_node("Reshape", ["x", "shape"], ["y"], name="deep")], [_t("x", ["batch", 3])],
                   [_t("y", [1] * 7 + [2, 3])], [shape])
    errors = check_for_tensorrt(model, (10, 3)).errors
    assert any("rank-9 reshape" in e and "deep" in e for e in errors)
    assert any("x has a dynamic shape" in e for e in errors)


def test_check_knows_which_version_brought_which_op():
    ln = _graph([helper.make_node("LayerNormalization", ["x", "s"], ["y"], name="ln")], [_t("x", [1, 4])],
                [_t("y", [1, 4])], [numpy_helper.from_array(np.ones(4, np.float32), "s")])
    assert any("needs TensorRT >= 8.6" in e for e in check_for_tensorrt(ln, (8, 5)).errors)
    assert check_for_tensorrt(ln, (8, 6)).ok
    gelu = _graph([helper.make_node("Gelu", ["x"], ["y"], name="g")], [_t("x", [2])], [_t("y", [2])], opset=20)
    errors = check_for_tensorrt(gelu, (9, 2)).errors
    assert any("opset 20 is above TensorRT 9.2's 19" in e for e in errors)
    assert any("Gelu g: needs TensorRT >= 10.0" in e for e in errors)
    assert check_for_tensorrt(gelu, (10, 0)).ok


def test_check_refuses_nonzero_zero_points():
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(3, np.int8), "z")
    model = _graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="q")], [_t("x", [2])],
                   [helper.make_tensor_value_info("y", TensorProto.INT8, [2])], [scale, zero])
    assert any("zero point must be 0" in e for e in check_for_tensorrt(model, (10, 3)).errors)


@pytest.mark.parametrize("name", ["test_convmlp", "test_uninext"])
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_export_leaves_a_folder_ready_to_build_on_the_device(tmp_path, name, precision):
    artifact = api.export(name, "trt", precision=precision, out=tmp_path / "a", int8=api.Int8Options(calib_size=4))
    folder = artifact.path
    assert {"model.onnx", "build_engine.sh", "build_engine.py", "trt_check.json", "manifest.json"} <= \
        {p.name for p in folder.iterdir()}
    check = json.loads((folder / "trt_check.json").read_text())
    assert check["errors"] == [] and check["tensorrt"] == "10.3"
    model = onnx.load(str(folder / "model.onnx"))
    assert model.opset_import[0].version == 17  # what JetPack's TensorRT parses
    ops = {n.op_type for n in model.graph.node}
    assert ("QuantizeLinear" in ops) == (precision == "int8")
    if precision == "fp16":
        assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
    engine = artifact.manifest["precision_graph"]["engine"]
    if NO_ENGINE:
        assert engine.startswith(f"not built: {NO_ENGINE}") and "build_engine.sh" in engine
    subprocess.run(["bash", "-n", str(folder / "build_engine.sh")], check=True)
    subprocess.run([sys.executable, "-m", "py_compile", str(folder / "build_engine.py")], check=True)


def test_export_refuses_a_graph_the_target_tensorrt_cannot_parse(tmp_path):
    with pytest.raises(UserError, match=r"not ready for TensorRT 8.5: LayerNormalization .* needs TensorRT >= 8.6"):
        api.export("convmlp_s", "trt", input_size=64, out=tmp_path / "a", trt=api.TrtOptions(trt_version="8.5"))
    assert not (tmp_path / "a").exists()
    forced = api.export("convmlp_s", "trt", input_size=64, out=tmp_path / "b",
                        trt=api.TrtOptions(trt_version="8.5", force=True))
    assert json.loads((forced.path / "trt_check.json").read_text())["errors"]


@pytest.mark.parametrize("version, precision, expected, absent", [
    ("8.5.2", "fp16", "--fp16", "--stronglyTyped"),
    ("10.3.0", "int8", "--int8", "--stronglyTyped"),
    ("10.3.0", "fp32", "--noTF32", "--fp16"),
    ("10.12.0", "fp16", "--stronglyTyped", "--fp16"),
    ("11.1.0", "int8", "--stronglyTyped", "--int8"),
    ("11.1.0", "fp32", "--noTF32", "--int8"),
])
def test_build_script_flags_per_precision_and_version(tmp_path, version, precision, expected, absent):
    script = tmp_path / "build_engine.sh"
    script.write_text(build_script(precision))
    result = subprocess.run(["bash", str(script), "--print"], capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin", "TRT_VERSION": version, "DLA_CORE": "0"})
    command = result.stdout.split()
    assert expected in command and absent not in command
    assert "--onnx=model.onnx" in command and "--useDLACore=0" in command and "--allowGPUFallback" in command


@pytest.mark.parametrize("version, strongly_typed, flags", [
    ("8.5.2", False, ["INT8"]), ("10.3.0", False, ["INT8"]), ("10.12.0", True, []), ("11.1.0", True, []),
])
def test_python_builder_settings_per_version(version, strongly_typed, flags):
    settings = trt_build.builder_settings(version, "int8")
    assert settings["strongly_typed"] == strongly_typed and settings["builder_flags"] == flags
    assert settings["explicit_batch_flag"] == version.startswith("8.")


def test_engine_header_round_trip_and_mismatch_messages(tmp_path):
    path = tmp_path / "model.engine"
    header = {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "model": "uninext_t"}
    trt_build.write_engine(path, header, b"PLAN-BYTES")
    assert trt_build.read_engine(path) == (header, b"PLAN-BYTES")
    here = {"gpu": "Orin", "compute_capability": "8.7"}
    assert trt_build.engine_mismatch(header, "10.3.0", here) is None
    assert "built with TensorRT 10.3.0, this machine has 8.5.2" in trt_build.engine_mismatch(header, "8.5.2", here)
    assert "compute capability 8.7" in trt_build.engine_mismatch(header, "10.3.0", {"gpu": "T4", "compute_capability": "7.5"})
    (tmp_path / "raw.engine").write_bytes(b"raw plan")
    with pytest.raises(ValueError, match="no header"):
        trt_build.read_engine(tmp_path / "raw.engine")


def test_a_fetched_engine_is_recorded_with_what_it_is_valid_for(tmp_path):
    """bundle --fetch-engine's record of an engine build_engine.py wrote (the header format, not TensorRT)."""
    from uninext_deploy.backends import get_backend

    backend = get_backend("trt")
    header = {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "precision": "fp16", "dla_core": None,
              "build_seconds": 41.5, "model": "uninext_t"}
    trt_build.write_engine(tmp_path / "model.engine", header, b"PLAN")
    assert backend.device_built == "model.engine"
    assert backend.device_built_record(tmp_path / "model.engine") == {k: v for k, v in header.items() if k != "model"}
    (tmp_path / "model.plan").write_bytes(b"a bare trtexec plan")
    with pytest.raises(UserError, match=r"the engine fetched from the device is not usable: .*\(no header\)"):
        backend.device_built_record(tmp_path / "model.plan")


def test_fetch_engine_needs_a_device_and_a_runtime_that_builds_there_in_one_line(tmp_path):
    with pytest.raises(UserError, match=r"--fetch-engine brings back the engine a device builds: name it with --device"):
        api.bundle("test_convmlp", "trt", fetch_engine=True, out=tmp_path / "b")
    with pytest.raises(UserError, match=r"ONNX Runtime builds nothing there .*; use it with --target trt"):
        api.bundle("test_convmlp", "ort", fetch_engine=True, device="pi@board", out=tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_parity_checks_the_tensorrt_input_graph_with_onnxruntime_here(tmp_path):
    report = api.parity("convmlp_s", "trt", precision="fp16", batches=(1,), input_size=96, inputs=api.Inputs(random=1),
                        out=tmp_path)
    assert report.passed
    runner = report.runs[0].runner
    assert runner == "trt" if not NO_ENGINE else runner.startswith("onnxruntime on the trt input graph")


@pytest.mark.skipif(NO_ENGINE is None, reason="TensorRT runs here: its artifacts are timed")
def test_latency_is_never_measured_on_a_stand_in(tmp_path):
    """One rule for a runtime that cannot run here: parity checks its graph on the stand-in (above), profile
    refuses with the reason, optimize lists it as skipped with the reason."""
    artifact = api.export("test_convmlp", "trt", out=tmp_path / "a")
    with pytest.raises(UserError, match=f"trt artifacts cannot be timed here: {NO_ENGINE}"):
        api.profile(artifact=artifact.path)
    with pytest.raises(UserError, match="cannot be timed here"):  # before exporting anything
        api.profile("test_convmlp", "trt", out=tmp_path / "never")
    assert not (tmp_path / "never").exists()
    from uninext_deploy.optimize import plan

    candidates = plan(["trt", "ort"], ["fp32"], ["percentile"])
    assert [(c.target, c.skipped) for c in candidates] == [("trt", f"not timed here: {NO_ENGINE}"), ("ort", None)]
    with pytest.raises(UserError, match="no candidate can run here"):
        plan(["trt"], ["fp32"], ["percentile"])


def test_the_device_runs_the_engine_either_build_script_writes(tmp_path):
    """build_engine.sh (trtexec) writes a bare model.plan, build_engine.py a model.engine with our header; the
    shipped runtime layer picks whichever exists, preferring the one with the header."""
    from uninext_deploy.device import runtimes

    trt = runtimes.get("trt")
    script = build_script("fp16")
    assert "--saveEngine=model.plan" in script
    (tmp_path / "model.plan").write_bytes(b"plan")
    assert trt.model_file(tmp_path, {}) == tmp_path / "model.plan"
    (tmp_path / "model.engine").write_bytes(b"engine")
    assert trt.model_file(tmp_path, {}) == tmp_path / "model.engine"


def test_install_hint_and_requirements_agree():
    from uninext_deploy.device import runtimes

    requirement = {"package": "tensorrt", "min": "10.3", "below": None, "why": "graph checked"}
    trt = runtimes.get("trt")
    lines = trt.device_packages(requirement)
    assert lines[0] == "cuda-python" and lines[1].startswith("# tensorrt>=10.3: on Jetson it comes with JetPack")
    hint = trt.install_hint(requirement)
    assert "pip install 'tensorrt>=10.3'" in hint and "cuda-python" in hint and "JetPack" in hint


@pytest.mark.skipif(NO_ENGINE is not None, reason=f"TensorRT engine tests need TensorRT and a CUDA GPU: {NO_ENGINE}")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_builds_and_passes_parity_on_the_gpu(tmp_path, precision):
    report = api.parity("convmlp_s", "trt", precision=precision, batches=(1, 2), out=tmp_path)
    assert report.passed and all(r.runner == "trt" for r in report.runs)
    assert (tmp_path / "b1" / "model.engine").exists()
