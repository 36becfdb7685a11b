"""What this machine offers: runtime versions (or how to install them), CPU features, GPUs."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
from pathlib import Path

from .cpu import cpu_flags, cpu_model
from .options import Int8Options

# the toolchain's own packages (pinned by constraints.txt, as the README installs them); runtimes have their
# backend's hint
TOOLCHAIN = ("torch", "onnx", "onnxsim")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpus() -> list[str]:
    devices = sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*"))
    if shutil.which("nvidia-smi"):
        devices.append("nvidia-smi present")
    if Path("/etc/nv_tegra_release").exists():
        devices.append("Jetson (nv_tegra_release)")
    return devices


def install_hints() -> dict[str, str]:
    """package -> how to install it: the toolchain's, then each backend's runtime and host packages."""
    from .backends import BACKENDS, backend_class

    hints = {package: f"pip install -c constraints.txt {package}" for package in TOOLCHAIN}
    for name in BACKENDS:
        backend = backend_class(name)()
        for package in (backend.runtime.package, *backend.host_packages):
            hints[package] = backend.install_hint()
    return hints


def precision_notes() -> dict[str, list[str]]:
    """backend -> how its precisions run on this CPU, each asked of the runtime (installed backends only)."""
    from .backends import BACKENDS, backend_class

    notes = {}
    for name in BACKENDS:
        backend = backend_class(name)()
        if backend.available() is None and backend.cannot_run() is None:
            notes[name] = backend.precision_notes()
    return notes


def warnings() -> list[str]:
    """What is installed wrong for this toolchain."""
    found = []
    if _version("onnxruntime-gpu"):
        # nvidia-modelopt[onnx] brings it; both builds then share one `onnxruntime` module and the CPU results
        # are no longer those of the pinned CPU build
        found.append("onnxruntime-gpu is installed beside onnxruntime (nvidia-modelopt brings it): keep it in a "
                     "separate venv, and reinstall onnxruntime here with pip install -c constraints.txt onnxruntime")
    return found


def report() -> dict:
    packages = {}
    for package, hint in install_hints().items():
        version = _version(package)
        packages[package] = {"version": version, "hint": None if version else hint}
    return {
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "int8_weight_bits": Int8Options().resolved_weight_bits,  # what INT8 exports use here by default
        "precisions": precision_notes(),
        "gpus": gpus(),
        "packages": packages,
        "warnings": warnings(),
    }
