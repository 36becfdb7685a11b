"""What this machine offers: runtime versions (or how to install them), CPU features, GPUs."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
from pathlib import Path

# package -> install hint shown when it is missing
PACKAGES = {
    "torch": "pip install -c constraints.txt torch",
    "onnx": "pip install onnx",
    "onnxruntime": "pip install onnxruntime",
    "onnxsim": "pip install onnxsim",
    "openvino": "pip install openvino",
    "nncf": "pip install nncf",
    "tensorrt": "install TensorRT from JetPack or NVIDIA's wheels (needs a CUDA GPU)",
}
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "f16c",
             "fma", "asimd", "asimddp", "sve", "i8mm", "bf16")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_flags() -> list[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return []
    words = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith(("flags", "Features")):
            words.update(line.split(":", 1)[1].split())
    return [flag for flag in CPU_FLAGS if flag in words]


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def gpus() -> list[str]:
    devices = sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*"))
    if shutil.which("nvidia-smi"):
        devices.append("nvidia-smi present")
    if Path("/etc/nv_tegra_release").exists():
        devices.append("Jetson (nv_tegra_release)")
    return devices


def report() -> dict:
    packages = {}
    for package, hint in PACKAGES.items():
        version = _version(package)
        packages[package] = {"version": version, "hint": None if version else hint}
    return {
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "gpus": gpus(),
        "packages": packages,
    }
