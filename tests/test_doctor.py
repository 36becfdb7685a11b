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
