"""The emulated aarch64 CPU as a device: the verbs as qemu user-mode runs of the ARM environment's Python
(arm/environment.py: Debian's arm64 sysroot and the runtimes' aarch64 wheels, set up once). A bundle runs in
place; its runtime is the ARM environment's, for the CPU model asked (cortex-a76 by default). Its C++ runner is
cross-compiled here (devices/local.built_runner). For correctness only: emulated time means nothing, so nothing
times on it."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from ..console import progress
from ..device.integrity import read_manifest
from ..device.runtimes import GRAPH_RUNTIME
from .base import Placed, Ran, Runtime, copy_in_place, probe_arguments
from .local import built_runner, run_probe


class EmulatedDevice:
    def __init__(self, cpu: str, arm_cache=None):
        from ..arm.environment import ArmEnvironment

        self.cpu, self.env = cpu, ArmEnvironment(arm_cache)
        self.name = f"emulated aarch64 {cpu} (qemu)"
        self.where = f" on {self.name}"

    def __enter__(self) -> EmulatedDevice:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def describe(self) -> dict:
        # the probe needs only the standard library; any runtime's site will do: the one that checks graphs
        self.env.ensure(GRAPH_RUNTIME, self.cpu)
        command, environ = self.env.command(GRAPH_RUNTIME, self.cpu, Path("-"), *probe_arguments())
        return run_probe(command, self.where, timeout=600, env=environ)

    def put(self, folder: Path) -> Placed:
        return Placed(str(folder.resolve()), uploaded=False)

    def prepare(self, bundle: Placed) -> Runtime:
        """The ARM environment's runtime for the bundle's, set up once (the runtime's declaration refuses one
        that cannot run on this CPU model, in one line)."""
        self.env.ensure(self._runtime(bundle), self.cpu)
        return Runtime(str(self.env.cpu_root(self.cpu) / "usr/bin/python3.11"), created=False)

    def run(self, runtime: Runtime, bundle: Placed, args: list[str], cpp: bool = False) -> Ran:
        if "--threads" not in args:  # emulated, a runtime's intra-op threads only contend for the host's cores
            args = [*args, "--threads", "1"]
        if not cpp:
            command, environ = self.env.command(self._runtime(bundle), self.cpu, Path(bundle.path, "run.py"), *args)
            with progress.step(f"running run.py {' '.join(args[:1])} on {self.name} (slow: emulated)"):
                result = subprocess.run(command, env=environ, capture_output=True, text=True,
                                        stdin=subprocess.DEVNULL)
            return Ran(result.returncode, result.stdout, result.stderr)
        self.env.ensure(self._runtime(bundle), self.cpu)  # the aarch64 runtime the runner links
        with tempfile.TemporaryDirectory(prefix="uninext-cpp-") as work:
            binary, built = built_runner(Path(bundle.path), "linux/arm64", Path(work), self.env.root)
            command, environ = self.env.program(self.cpu, str(binary), "--bundle", bundle.path, *args)
            with progress.step(f"running the C++ runner {' '.join(args[:1])} on {self.name} (slow: emulated)"):
                result = subprocess.run(command, env=environ, capture_output=True, text=True,
                                        stdin=subprocess.DEVNULL)
        return Ran(result.returncode, result.stdout, result.stderr, built=built)

    def _runtime(self, bundle: Placed) -> str:
        from ..arm.run import runtime_for

        manifest = read_manifest(Path(bundle.path))
        return runtime_for(manifest["backend"], manifest["precision"], self.cpu)

    def fetch(self, path: str, into: Path) -> bool:
        return copy_in_place(path, into)

    def cannot_run(self, backend) -> str | None:
        return None  # its run.py says why where the runtime cannot run there (runtime_for refuses first)
