"""Debian packages fetched for the tool's own use, never installed: a private apt state (its own lists and
cache under a folder of ours, reading the host's Debian sources plus any suites asked for), so the host's
apt and dpkg are left untouched. The ARM set-up takes its emulator and sysroot this way, the C++ runner its
headers and static libraries."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .errors import UserError

DEBIAN_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def private_apt(root: Path, architectures: str, suites: tuple[str, ...] = ()) -> list[str]:
    """apt options for a private state under ``root`` (``architectures``: "arm64,amd64", the first the
    default), reading the host's Debian sources and, for each of ``suites``, Debian's main component."""
    for sub in ("etc/apt.conf.d", "etc/preferences.d", "etc/sources.list.d", "state/lists/partial",
                "cache/archives/partial"):
        (root / sub).mkdir(parents=True)
    if Path("/etc/apt/sources.list").exists():
        shutil.copy2("/etc/apt/sources.list", root / "etc/sources.list")
    for source in Path("/etc/apt/sources.list.d").glob("*"):
        if source.suffix in (".list", ".sources"):
            shutil.copy2(source, root / "etc/sources.list.d")
    if suites:
        (root / "etc/sources.list.d/uninext-deploy.sources").write_text(
            f"Types: deb\nURIs: {DEBIAN_MIRROR}\nSuites: {' '.join(suites)}\nComponents: main\nSigned-By: {KEYRING}\n")
    (root / "state/status").write_text("")
    return ["-o", f"Dir::Etc={root}/etc", "-o", f"Dir::State={root}/state", "-o",
            f"Dir::State::status={root}/state/status", "-o", f"Dir::Cache={root}/cache",
            "-o", f"APT::Architecture={architectures.split(',')[0]}", "-o", f"APT::Architectures={architectures}",
            "-o", "Debug::NoLocking=1"]


def host_architecture(setup: str) -> str:
    return step(["dpkg", "--print-architecture"], "host architecture", setup).strip()


def step(command: list[str], what: str, setup: str, cwd=None) -> str:
    """Run one set-up command; failures become one line naming the ``setup``, the step and the likely fix."""
    if shutil.which(command[0]) is None and not Path(command[0]).exists():
        raise UserError(f"{setup} needs {command[0]} ({what}); it runs on Debian/Ubuntu hosts with apt")
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no message)"])[-1][:200]
        hint = ("no space left: free some disk" if "No space left" in result.stderr else
                "check the network to the package registries (and run `apt-get update` once)")
        raise UserError(f"{setup} step '{what}' failed: {last}; {hint}")
    return result.stdout
