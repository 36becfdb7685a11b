"""The one runtime layer (device/runtimes.py): each runtime declared once, the host's runners opening models
through it, and its refusals and version checks."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import on_x86_without_vnni
from uninext_deploy.backends import BACKENDS, get_backend
from uninext_deploy.device import runtimes


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """Two named outputs: y = x @ W (a 1x8 by 8x4 MatMul) and z = y + y."""
    weights = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Add", ["y", "y"], ["z"])],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("y", "z")],
                              [numpy_helper.from_array(weights, "w")])
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path, weights


def test_every_backend_has_exactly_one_declaration():
    assert set(runtimes.RUNTIMES) == set(BACKENDS)
    for name, runtime in runtimes.RUNTIMES.items():
        assert runtime.name == name and runtime.platforms == runtimes.PLATFORMS
        assert runtime.install_hint({"package": runtime.package, "min": "1.0", "below": None})
        assert runtime.device_packages({"package": runtime.package, "min": "1.0", "below": None})


def test_the_host_runner_opens_models_through_the_shipped_layer(tiny_onnx):
    """What the host proves is what run.py runs: the host runner holds a runtimes.Session, and ORT's options
    (threads, a single inter-op thread) are the ones the device gets."""
    path, weights = tiny_onnx
    runner = get_backend("ort").open(path, "fp32", threads=2)
    assert isinstance(runner.session, runtimes.Session)
    options = runner.session.native["session"].get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    device = runtimes.load("ort", path, "fp32", threads=2)
    x = np.arange(8, dtype=np.float32)[None]
    outputs = runner.run(x)
    assert list(outputs) == ["y", "z"]  # every output, by name, in the graph's order
    np.testing.assert_allclose(outputs["y"], x @ weights, rtol=1e-6)
    np.testing.assert_allclose(outputs["z"], 2 * x @ weights, rtol=1e-6)
    for name, y in device.run(x).items():
        np.testing.assert_array_equal(outputs[name], y)
    assert runner.info() == device.info


def test_openvino_runs_in_the_precision_it_is_told(tiny_onnx):
    pytest.importorskip("openvino")
    path, weights = tiny_onnx
    session = runtimes.load("openvino", path, "fp32", threads=1)
    assert session.info["inference_precision"] == "f32" and session.info["threads"] == 1
    x = np.ones((1, 8), np.float32)
    outputs = session.run(x)
    assert list(outputs) == ["y", "z"]
    np.testing.assert_allclose(outputs["y"], x @ weights, rtol=1e-5)
    np.testing.assert_allclose(outputs["z"], 2 * x @ weights, rtol=1e-5)


def test_emulation_refusals_come_from_the_declarations():
    assert runtimes.emulation_problem("ort", "int8", "cortex-a72") is None
    assert runtimes.emulation_problem("trt", "fp16", "cortex-a76").startswith(
        "--platform linux/arm64 runs ONNX Runtime and OpenVINO artifacts here; trt targets NVIDIA GPUs")
    assert "no dotprod" in runtimes.emulation_problem("openvino", "int8", "cortex-a72")
    assert runtimes.emulation_problem("openvino", "fp32", "max,sme=off") is None


def test_versions_are_checked_against_the_bundle_requirement(monkeypatch):
    requirement = {"package": "onnxruntime", "min": "1.17", "below": "2", "why": "ONNX opset 20"}
    assert runtimes.spec(requirement) == "onnxruntime>=1.17,<2"
    assert runtimes.version_problem("1.16.3", requirement)[0] is True
    assert runtimes.version_problem("2.0.1", requirement) == (
        False, "onnxruntime 2.0.1 is newer than this bundle was made for (onnxruntime>=1.17,<2)")
    assert runtimes.version_tuple("2026.4.1-20000-abc") == (2026, 4, 1)

    def missing():
        raise ImportError

    monkeypatch.setitem(runtimes.RUNTIMES, "ort", dataclasses.replace(runtimes.RUNTIMES["ort"], version=missing))
    with pytest.raises(runtimes.RuntimeProblem, match=r"onnxruntime is not installed; pip install 'onnxruntime>=1.17,<2'"):
        runtimes.checked_version("ort", requirement)


@pytest.mark.parametrize("cpu, saturates", [("EPYC-Rome", True), ("Haswell", True), ("Nehalem", False)])
def test_int8_saturation_is_asked_of_the_kernels_on_every_emulated_cpu(cpu, saturates):
    """qemu's CPU models, whatever this host is: AVX2 without VNNI saturates (EPYC-Rome, Haswell); an SSE4-only
    CPU (Nehalem) has no pairwise int16 kernel and stays exact, though it has no VNNI either. On an Intel host
    with AVX-VNNI, /proc/cpuinfo under the emulator is the host's: the answer must not come from there."""
    probe = "from uninext_deploy.device import runtimes; print(runtimes.int8_dot_saturates())"
    emulated = on_x86_without_vnni(sys.executable, "-c", probe, cpu=cpu)
    assert emulated.returncode == 0 and emulated.stdout.strip() == str(saturates), emulated.stderr[-2000:]


def test_int8_saturation_on_this_cpu_matches_its_own_flags():
    """Not emulated, /proc/cpuinfo is this CPU's: AVX2 without AVX-512 VNNI or AVX-VNNI saturates."""
    flags = {word for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
             for word in line.split()}
    if not flags:
        pytest.skip("this machine's /proc/cpuinfo lists no x86 flags")
    assert runtimes.int8_dot_saturates() is ("avx2" in flags and not flags & {"avx512_vnni", "avx_vnni"})
