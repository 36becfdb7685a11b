"""What a device has, as its own python3 sees it: sent on stdin (``python3 - FLAG...``), standard library only
(no torch, nothing of ours installed there), one JSON object on stdout. Its arguments come from the host's
declarations, so nothing here names a runtime: ``--packages`` the distributions worth a version (the runner's and
every runtime's, devices.base.probe_arguments) and ``--flags`` the CPU features worth naming (cpu.CPU_FLAGS)."""

import argparse
import glob
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys

def version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def cpu(wanted):
    model, flags = platform.processor() or "unknown", set()
    for line in read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and model in ("unknown", platform.machine()):
            model = value.strip()
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return model, [flag for flag in wanted if flag in flags]


def memory_mb():
    fields = {}
    for line in read("/proc/meminfo").splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[key] = int(value.split()[0]) // 1024
    return fields.get("MemTotal"), fields.get("MemAvailable")


def nvidia_gpus():
    if not shutil.which("nvidia-smi"):
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ["nvidia-smi did not answer"]
    return [line.strip() for line in listed.splitlines() if line.strip()]


def tensorrt():
    """The TensorRT Python package's version, else the library's from its file name (JetPack's libnvinfer)."""
    if version("tensorrt"):
        return version("tensorrt")
    libraries = sorted(glob.glob("/usr/lib/*-linux-gnu/libnvinfer.so.*.*") + glob.glob("/usr/lib64/libnvinfer.so.*.*"))
    return libraries[-1].split(".so.", 1)[1] if libraries else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--packages", default="")
    parser.add_argument("--flags", nargs="*", default=[])
    args = parser.parse_args()
    model, flags = cpu(args.flags)
    total, available = memory_mb()
    home = os.path.expanduser("~")
    print(json.dumps({
        "hostname": platform.node(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "libc": " ".join(platform.libc_ver()).strip() or None,  # "glibc 2.36": the manylinux wheels it takes
        "python_path": sys.executable,
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu_flags": flags,
        "memory_total_mb": total,
        "memory_available_mb": available,
        "home": home,
        "disk_free_mb": shutil.disk_usage(home).free // 2**20,
        "packages": {package: version(package) for package in args.packages.split(",") if package},
        "gpus": sorted(glob.glob("/dev/nvidia[0-9]*")) + nvidia_gpus(),
        # "NVIDIA Jetson Orin Nano Developer Kit", "Raspberry Pi 5 Model B Rev 1.0"
        "board": read("/proc/device-tree/model").strip("\0\n ") or None,
        "jetson_l4t": (read("/etc/nv_tegra_release").splitlines() or [None])[0],  # JetPack's L4T release line
        "tensorrt": tensorrt(),
    }))


if __name__ == "__main__":
    main()
