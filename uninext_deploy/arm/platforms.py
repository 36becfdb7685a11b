"""Platform names: what --platform accepts, and the platform of this machine."""

from __future__ import annotations

import platform as host

from ..errors import UserError

ARM = "linux/arm64"
CPUS = ("cortex-a76", "cortex-a72", "cortex-a57", "cortex-a53", "neoverse-n1", "max")  # what qemu 7.2 emulates


def check_cpu(cpu: str) -> str:
    if cpu not in CPUS and not cpu.startswith("max,"):
        raise UserError(f"unknown --cpu {cpu!r}; qemu 7.2 emulates {', '.join(CPUS)}")
    return cpu


def normalise_platform(name: str) -> str:
    """"host" (this machine, x86-64 here) or "linux/arm64" (checked on an emulated aarch64 CPU)."""
    key = name.strip().lower()
    if key in ("host", "native", "linux/x86_64", "linux/amd64", "x86_64"):
        return "host"
    if key in ("linux/arm64", "linux/aarch64", "arm64", "aarch64"):
        return ARM
    raise UserError(f"unknown --platform {name!r}; use linux/arm64 (emulated) or linux/x86_64 (this machine)")


def host_platform() -> str:
    return ARM if host.machine().lower() in ("aarch64", "arm64") else "linux/x86_64"


def bundle_platform(name: str) -> str:
    """"linux/x86_64" or "linux/arm64" for a --platform value ("host": this machine)."""
    key = normalise_platform(name)
    return host_platform() if key == "host" else key


def emulated(platform: str) -> bool:
    """Whether ``platform`` is checked on the emulated CPU here (an ARM platform on a non-ARM host)."""
    return bundle_platform(platform) == ARM and host_platform() != ARM
