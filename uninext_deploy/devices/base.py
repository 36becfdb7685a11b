"""The device idea, shared by every kind of device: a place where a bundle's own run.py runs, with four verbs
(describe the place; put a bundle there, content-addressed and atomically; prepare its runtime; run run.py
with JSON back), the bundle run through them (:func:`run_bundle`), and DEST as the user writes it."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..cpu import CPU_FLAGS
from ..device import runtimes
from ..device.integrity import sha256
from ..errors import UserError

REQUIREMENTS = "requirements.txt"
MACHINE_PLATFORMS = {"x86_64": "linux/x86_64", "amd64": "linux/x86_64", "aarch64": "linux/arm64",
                     "arm64": "linux/arm64"}


@dataclass(frozen=True)
class Destination:
    """``user@host[:port]`` (``[v6addr]:port`` too) or a ``Host`` alias of ~/.ssh/config, whose user, port,
    keys and ProxyJump the SSH client reads there (None: not given here); ``identity_file``: the private key to
    log in with (an inventory's ansible_ssh_private_key_file), else the config's and the default ones."""

    text: str
    host: str
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None


def parse_destination(text: str) -> Destination:
    match = re.fullmatch(r"(?:(?P<user>[\w.-]+)@)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[\w.-]+))"
                         r"(?::(?P<port>\d{1,5}))?", text.strip())
    port = int(match["port"]) if match and match["port"] else None
    if match is None or (port is not None and not 1 <= port <= 65535):
        raise UserError(f"--device {text!r} is not user@host[:port] (or a Host alias of ~/.ssh/config), "
                        "e.g. pi@192.168.1.20 or pi@board:2222")
    return Destination(text.strip(), match["v6"] or match["host"], match["user"], port)


@dataclass(frozen=True)
class Placed:
    """A bundle (or key) folder on the device at ``path``; ``uploaded``: copied this time, not found there;
    ``requirements``: the sha256 of its requirements.txt (None: it has none); ``local``: the folder here it came
    from (what the host reads of it, never what the device says it holds)."""

    path: str
    uploaded: bool
    requirements: str | None = None
    local: Path | None = None


@dataclass(frozen=True)
class Runtime:
    """The Python that runs bundles there; ``created``: its venv was made this time, not reused; ``wheels``:
    where a venv made this time got its packages ("the device's index", "wheels from this machine")."""

    python: str
    created: bool
    wheels: str | None = None


@dataclass
class Ran:
    """What run.py said: its exit code, stdout (JSON with --json) and stderr, and how it got to run."""

    returncode: int
    stdout: str
    stderr: str
    record: dict | None = None
    built: dict | None = None  # the C++ runner's build, where the host made it: seconds, binary_bytes


class Device(Protocol):
    name: str  # as the user named it ("this machine", "pi@board")
    where: str  # " on pi@board" after the runner's name in a report, "" for this machine

    def describe(self) -> dict: ...  # the probe's facts (devices/probe.py)

    def put(self, folder: Path) -> Placed: ...

    def prepare(self, bundle: Placed) -> Runtime: ...

    def run(self, runtime: Runtime, bundle: Placed, args: list[str], cpp: bool = False) -> Ran: ...  # cpp: the
    # bundle's C++ runner, built there by its CMake, instead of run.py

    def fetch(self, path: str, into: Path) -> bool: ...  # a file there (raw bytes) into ``into``; False: none

    def cannot_run(self, backend) -> str | None: ...  # why the bundle's runtime cannot run there, if known


def tree_digest(folder: Path) -> str:
    """sha256 of every file's path and sha256 under ``folder``: a bundle's address on a device."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256(path)}\n".encode())
    return digest.hexdigest()


def requirements_digest(folder: Path) -> str | None:
    return sha256(folder / REQUIREMENTS) if (folder / REQUIREMENTS).is_file() else None


# the probe's facts that decide a timing there: the board, its CPU, memory, accelerators and Python (not what
# changes between two runs: free memory and disk, the home folder)
SPEED_FACTS = ("hostname", "machine", "system", "python", "cpu", "cores", "cpu_flags", "memory_total_mb", "gpus",
               "board", "jetson_l4t", "tensorrt")


def fingerprint(device: Device) -> str:
    """sha256 of the device's name and its SPEED_FACTS: where a timing was taken (results/store.py); the same
    board with a new CPU, memory, OS or JetPack is another device, two boards of one model are two."""
    facts = device.describe()
    identity = {"name": device.name, **{fact: facts.get(fact) for fact in SPEED_FACTS}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def probe_arguments() -> list[str]:
    """The probe's arguments (probe.py runs on the device and names nothing itself): the packages worth a version
    (run.py's own, every declared runtime's, pip) and the CPU features worth naming."""
    packages = [*runtimes.RUNNER_PACKAGES, *(runtime.package for runtime in runtimes.RUNTIMES.values()), "pip"]
    return ["--packages", ",".join(packages), "--flags", *CPU_FLAGS]


def copy_in_place(path: str, into: Path) -> bool:
    """``fetch`` where the bundle ran in place (this machine, the emulated CPU): a copy; False when it has none."""
    if not Path(path).is_file():
        return False
    shutil.copyfile(path, into)
    return True


def platform_of(machine: str) -> str:
    return MACHINE_PLATFORMS.get(machine.lower(), f"linux/{machine}")


def run_bundle(device: Device, folder: Path, args: list[str], public_key: str | Path | None = None,
               inputs: np.ndarray | None = None, cpp: bool = False) -> Ran:
    """The bundle in ``folder`` run as ``run.py ARGS`` on ``device``: put there, its runtime prepared, run; with
    ``public_key``, the key is put there too and run.py checks the signature with it before anything runs; with
    ``inputs`` (preprocessed, float32), they are put there as raw float32 and run with ``--infer``; ``cpp``: its
    C++ runner instead, built there with its own CMake."""
    seconds, start = {}, time.monotonic()
    with tempfile.TemporaryDirectory(prefix="uninext-key-") as keys, \
            tempfile.TemporaryDirectory(prefix="uninext-inputs-") as staged:
        bundle = device.put(folder)
        if public_key is not None:
            shutil.copyfile(public_key, Path(keys, "key.pem"))
            args = [*args, "--public-key", f"{device.put(Path(keys)).path}/key.pem"]
        if inputs is not None:
            np.ascontiguousarray(inputs, "<f4").tofile(Path(staged, "inputs.bin"))
            args = [*args, "--infer", f"{device.put(Path(staged)).path}/inputs.bin"]
        seconds["put"], start = round(time.monotonic() - start, 3), time.monotonic()
        runtime = device.prepare(bundle)
        seconds["prepare"], start = round(time.monotonic() - start, 3), time.monotonic()
        ran = device.run(runtime, bundle, args, cpp)
        seconds["run"] = round(time.monotonic() - start, 3)
    ran.record = {"device": device.name, "bundle": bundle.path, "uploaded": bundle.uploaded,
                  "python": runtime.python, "runtime_created": runtime.created, "wheels": runtime.wheels,
                  "seconds": seconds, **({"cpp_build": ran.built} if cpp else {})}
    return ran


def report_of(result, key: str, what: str, where: str = " here", codes: tuple[int, ...] = (0,)) -> dict:
    """The JSON report a runner printed (``result``: a Ran or CompletedProcess), which must hold ``key``; else one
    UserError: ``what`` failed ``where``, with the runner's last line (a crash's exit code too: never a report)."""
    try:
        report = json.loads(result.stdout) if result.returncode in codes else {}
    except ValueError:
        report = {}
    if key not in report:
        last = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1][:200]
        raise UserError(f"{what} failed{where}: {last.removeprefix('error: ')}")
    return report


def of_platform(device: Device, platform: str) -> dict:
    """The device's facts (its probe's), refused in one line when it is not a ``platform`` machine."""
    facts = device.describe()
    if platform_of(facts["machine"]) != platform:
        raise UserError(f"{device.name} is {platform_of(facts['machine'])}, the bundle is for {platform}: bundle "
                        f"for it with --platform {platform_of(facts['machine'])}")
    return facts
