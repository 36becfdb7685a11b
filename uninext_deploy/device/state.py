"""The device's state while it is timed: CPU governor and clocks, temperature, load, and on a Jetson its power
mode and GPU clock; and the warnings a timing taken in that state deserves (busy, throttling).

Standard library only: bundles ship this file verbatim as ``state.py``, and run.py's --bench reads the state
before and after its timed runs. Whatever the kernel does not expose (no cpufreq or thermal zones in most
VMs and containers) is None, never a guess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSY_LOAD_PER_CPU = 0.5  # a 1-minute load average above half the CPUs: another job shares the cores
HOT_CELSIUS = 80.0  # Raspberry Pi firmware soft-throttles from 80 C, Jetson modules from about 85 C (their docs)
THROTTLED_CLOCK = 0.9  # a clock under 90 % of its maximum under the performance governor has been cut


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read(root: str | Path = "/") -> dict:
    """The state now, from the kernel's files under ``root`` (the real / on a device)."""
    root = Path(root)
    cpus = sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq"))
    governors = sorted({g for g in (_read(c / "scaling_governor") for c in cpus) if g})
    clocks = [(_read(c / "scaling_cur_freq"), _read(c / "cpuinfo_max_freq")) for c in cpus]
    clocks = [(int(now) / 1000, int(top) / 1000) for now, top in clocks if now and top and now.isdigit() and top.isdigit()]
    zones = {}
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        temp = _read(zone / "temp")
        if temp and temp.lstrip("-").isdigit():
            zones[_read(zone / "type") or zone.name] = int(temp) / 1000
    load = _read(root / "proc/loadavg")
    state = {
        "governor": ",".join(governors) or None,
        "cpu_mhz": round(min(now for now, _ in clocks)) if clocks else None,
        "cpu_max_mhz": round(max(top for _, top in clocks)) if clocks else None,
        "clock_ratio": round(min(now / top for now, top in clocks), 3) if clocks else None,
        "temperature_c": max(zones.values()) if zones else None,
        "hottest_zone": max(zones, key=zones.get) if zones else None,
        "load_1m": float(load.split()[0]) if load else None,
        "cpus": os.cpu_count(),
    }
    state.update(_jetson(root))
    return state


def _jetson(root: Path) -> dict:
    """A Jetson's power mode (nvpmodel) and GPU clock, where the board is one."""
    release = _read(root / "etc/nv_tegra_release")
    if release is None:
        return {}
    mode = None
    if shutil.which("nvpmodel") and root == Path("/"):
        query = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
        mode = next((line.split(":", 1)[1].strip() for line in query.stdout.splitlines()
                     if line.startswith("NV Power Mode")), None)
    gpu = next((_read(d / "cur_freq") for d in sorted((root / "sys/class/devfreq").glob("*"))
                if "gpu" in d.name or "gv11b" in d.name or "ga10b" in d.name), None)
    return {"jetson": release.splitlines()[0][:80], "power_mode": mode,
            "gpu_mhz": round(int(gpu) / 1e6) if gpu and gpu.isdigit() else None}


def warnings(before: dict, after: dict) -> list[str]:
    """What makes times taken between ``before`` and ``after`` slower than the device's own: load from others
    (read before the runs, so they do not count themselves), heat, or cut clocks."""
    found = []
    if before["load_1m"] is not None and before["cpus"] and before["load_1m"] > BUSY_LOAD_PER_CPU * before["cpus"]:
        found.append(f"busy: load {before['load_1m']:.2f} on {before['cpus']} CPUs before timing; times are slower "
                     "than on an idle device (stop other work there, or time again)")
    hot = max((s["temperature_c"] for s in (before, after) if s["temperature_c"] is not None), default=None)
    if hot is not None and hot >= HOT_CELSIUS:
        found.append(f"hot: {hot:.0f} C ({after['hottest_zone'] or before['hottest_zone']}); the device may be "
                     "throttling (cool it, or add a heatsink or fan)")
    ratio = after["clock_ratio"]
    if ratio is not None and after["governor"] == "performance" and ratio < THROTTLED_CLOCK:
        found.append(f"throttling: a CPU ran at {ratio:.0%} of its maximum clock under the performance governor")
    elif after["governor"] not in (None, "performance"):
        found.append(f"governor {after['governor']}: clocks follow the load, so times vary (set the performance "
                     "governor for stable numbers)")
    return found
