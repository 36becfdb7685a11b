"""doctor: what this machine has, and what is installed wrong."""

import importlib.metadata

from uninext_deploy import doctor


def test_this_environment_has_the_pinned_cpu_onnxruntime_only():
    info = doctor.report()
    assert info["warnings"] == [] and info["packages"]["onnxruntime"]["version"] == importlib.metadata.version(
        "onnxruntime")


def test_onnxruntime_gpu_beside_the_cpu_build_is_reported(monkeypatch):
    real = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda package: "1.31.0" if package == "onnxruntime-gpu" else real(package))
    (warning,) = doctor.report()["warnings"]
    assert warning.startswith("onnxruntime-gpu is installed beside onnxruntime") and "separate venv" in warning


def test_doctor_says_which_int8_weights_this_cpu_takes(monkeypatch):
    from conftest import invoke

    from uninext_deploy.device import runtimes

    for saturates, said in ((True, "INT8 exports: 7-bit weights (no VNNI"), (False, "INT8 exports: 8-bit weights")):
        monkeypatch.setattr(runtimes, "int8_dot_saturates", lambda saturates=saturates: saturates)
        assert doctor.report()["int8_weight_bits"] == (7 if saturates else 8)
        assert said in invoke("doctor").stdout


def test_doctor_says_how_each_runtime_runs_fp16_on_this_cpu_as_the_runtime_itself_says():
    """On a CPU with AVX512-FP16 (an Intel Xeon) OpenVINO runs FP16 in f16, with AMX-BF16 or AVX512-BF16 in
    bf16; ONNX Runtime casts around FP32 kernels unless its build has FP16 ones for this CPU."""
    import openvino as ov

    from uninext_deploy.backends.ort import fp16_runs_through_casts

    notes = doctor.report()["precisions"]
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    expected = "f16" if "FP16" in capabilities else "bf16" if "BF16" in capabilities else "f32"
    assert notes["openvino"][0].startswith(f"FP16 artifacts run in {expected}, FP32 and INT8 ones in f32")
    assert ("behind Casts" in notes["ort"][0]) is fp16_runs_through_casts()
    assert "trt" not in notes  # no GPU here: it runs nothing, so it says nothing
