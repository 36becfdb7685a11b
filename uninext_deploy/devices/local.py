"""This machine as a device: the verbs as subprocesses of this interpreter. A bundle checked here runs in
place (nothing to copy) with this environment's Python, which holds every CPU runtime at the pinned versions;
its C++ runner is built here from the bundle's cpp/ (cpp_runner's toolchain)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..arm.platforms import host_platform
from ..console import progress
from ..device.integrity import read_manifest
from ..errors import UserError
from .base import Placed, Ran, Runtime, copy_in_place, probe_arguments

PROBE = Path(__file__).with_name("probe.py")


class LocalDevice:
    name = "this machine"
    where = ""

    def __enter__(self) -> LocalDevice:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def describe(self) -> dict:
        return run_probe([sys.executable, "-", *probe_arguments()], " here", timeout=60)

    def put(self, folder: Path) -> Placed:
        return Placed(str(folder.resolve()), uploaded=False)

    def prepare(self, bundle: Placed) -> Runtime:
        return Runtime(sys.executable, created=False)

    def run(self, runtime: Runtime, bundle: Placed, args: list[str], cpp: bool = False) -> Ran:
        if not cpp:
            result = subprocess.run([runtime.python, str(Path(bundle.path, "run.py")), *args], capture_output=True,
                                    text=True, stdin=subprocess.DEVNULL)
            return Ran(result.returncode, result.stdout, result.stderr)
        with tempfile.TemporaryDirectory(prefix="uninext-cpp-") as work:
            binary, built = built_runner(Path(bundle.path), host_platform(), Path(work))
            result = subprocess.run([str(binary), "--bundle", bundle.path, *args], capture_output=True, text=True,
                                    stdin=subprocess.DEVNULL)
        return Ran(result.returncode, result.stdout, result.stderr, built=built)

    def fetch(self, path: str, into: Path) -> bool:
        return copy_in_place(path, into)

    def cannot_run(self, backend) -> str | None:
        return backend.cannot_run()


def built_runner(folder: Path, platform: str, work: Path, arm_cache=None) -> tuple[Path, dict]:
    """The bundle's C++ runner built here from its cpp/ for ``platform`` (cross-compiled for linux/arm64) with the
    toolchain's static libraries, into ``work`` (cpp_runner: a build of the same sources comes from its cache):
    the binary and its build record."""
    from .. import cpp_runner

    toolchain = cpp_runner.Toolchain(log=progress.phase)
    toolchain.ensure(platform)
    start = time.perf_counter()
    root = cpp_runner.runtime_root(read_manifest(folder)["backend"], platform, arm_cache)
    binary = cpp_runner.build(folder / cpp_runner.FOLDER, platform, root, work, toolchain)
    return binary, {"seconds": round(time.perf_counter() - start, 1), "binary_bytes": binary.stat().st_size}


def run_probe(command: list[str], where: str, timeout: float, env: dict | None = None) -> dict:
    """The device probe (probe.py on ``command``'s stdin) run here: its facts, or one UserError naming ``where``."""
    probe = subprocess.run(command, input=PROBE.read_text(), capture_output=True, text=True, timeout=timeout, env=env)
    if probe.returncode != 0:
        raise UserError(f"the device probe failed{where}: {(probe.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(probe.stdout)
