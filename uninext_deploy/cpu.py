"""This machine's CPU as /proc/cpuinfo tells it: model and the instruction-set features the runtimes use."""

from __future__ import annotations

import platform
from pathlib import Path

CPU_FLAGS = ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "f16c",
             "fma", "avx512fp16", "asimd", "asimdhp", "asimddp", "sve", "i8mm", "bf16")


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

