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
