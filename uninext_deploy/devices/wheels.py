"""Wheels for a device without the package index: the host downloads the bundle's requirements as binary wheels
for the device's architecture, glibc and Python (what its probe said), into a folder that is put on the device
like a bundle (content-addressed, atomic), where pip installs from it alone (``--no-index --find-links``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..errors import UserError

OLDEST_MANYLINUX = 17  # manylinux2014 = manylinux_2_17: the oldest tag current wheels are built for


def platform_tags(machine: str, libc: str | None) -> list[str]:
    """The manylinux tags a Linux ``machine`` with ``libc`` ("glibc 2.36") installs, newest last; one line
    when it is not glibc (musl's Alpine boards take other wheels, which the runtimes do not publish)."""
    name, _, version = (libc or "").partition(" ")
    if name != "glibc" or not version.count("."):
        raise UserError(f"the device's C library is {libc or 'unknown'}, not glibc: the runtimes publish wheels "
                        "for glibc only")
    minor = int(version.split(".")[1])
    return [f"manylinux2014_{machine}", *(f"manylinux_2_{v}_{machine}" for v in range(OLDEST_MANYLINUX, minor + 1))]


def download(requirements: Path, facts: dict, into: Path, timeout: float) -> None:
    """The wheels of ``requirements`` for the device ``facts`` describe, downloaded here (this machine's pip,
    its index and cache) into ``into``."""
    python = ".".join(facts["python"].split(".")[:2])
    tags = [arg for tag in platform_tags(facts["machine"], facts.get("libc")) for arg in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
               "--implementation", "cp", "--python-version", python, *tags, "-r", str(requirements), "-d", str(into)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UserError(f"downloading the device's wheels here took over {timeout:g} s; raise --device-timeout "
                        "or give the device its package index") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1][:200]
        raise UserError(f"this machine could not download the device's wheels either (Python {python}, "
                        f"{facts['machine']}): {last.removeprefix('ERROR: ')}")
