"""The one Backend idea: compile an ONNX into artifact files; open an artifact as a Runner.

A Runner opens its model through ``device/runtimes.py``, the very code bundles ship, and adds only host
extras (per-layer profile, accelerator-side timing). Parity, profiling, bundles and optimize talk only to
Runners and to what a Backend declares about itself, so a new runtime is one backend module plus one
declaration in ``device/runtimes.py``, and no harness asks which runtime it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifact import Artifact
from ..device import runtimes
from ..errors import UserError


@dataclass
class Compiled:
    """What ``Backend.compile`` wrote: {file name: role}, and a report for the manifest."""

    files: dict[str, str]
    report: dict = field(default_factory=dict)


class Runner:
    """A model file opened by runtime ``runtime`` through the shipped runtime layer. ``name`` says what runs
    it, as reports show it."""

    def __init__(self, runtime: str, path: Path, precision: str, threads: int | None = None, name: str = "",
                 **extras):
        self.runtime, self.path, self.precision, self.threads = runtime, Path(path), precision, threads
        self.name = name or runtime
        self.session = open_session(runtime, self.path, precision, threads, **extras)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(np.ascontiguousarray(x, dtype=np.float32))

    def info(self) -> dict:
        """Runtime, version, device, threads and precision actually in use."""
        return dict(self.session.info)

    def device_times_ms(self, runs: int) -> list[float]:
        """Per-run time measured on the accelerator itself (no host copies), for runtimes that can tell;
        empty otherwise. Call after ``run`` has seen an input."""
        return []

    def per_layer_profile(self, x: np.ndarray, runs: int = 10) -> list[dict]:
        """Time per layer as [{"name", "op", "ms"}], slowest first; empty where the runtime cannot tell."""
        return []


def open_session(runtime: str, path: Path, precision: str, threads: int | None, **extras) -> runtimes.Session:
    """``runtimes.load``, with its failures as one UserError naming the file and the fix."""
    try:
        return runtimes.load(runtime, path, precision, threads, **extras)
    except runtimes.RuntimeProblem as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # runtimes raise many types for unreadable or foreign files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{runtimes.get(runtime).title} cannot load {path}: {first}; re-export the artifact") from None


class Backend(ABC):
    """A runtime as the host tool sees it; every fact about it that other code needs is declared here.

    ``applies_precision``: False when the backend runs the precision graph it is given (the FP16-typed or
    QDQ ONNX, shared with TensorRT); True when it takes the float graph and applies the precision itself
    (OpenVINO: compressed FP16 weights, NNCF INT8 from the same calibration data).
    ``int8_float_depthwise``: its QDQ graph keeps every conv of a block that holds a depthwise conv float,
    where the runtime's integer kernels for such blocks cost more than they save.
    ``stand_in``: the backend whose runtime runs this backend's ONNX graph where this one cannot run here.
    The rule every command follows then: accuracy (parity, golden checks) is measured on the stand-in
    and says so; latency is never measured on a stand-in (profile refuses, optimize skips, both say why).
    """

    name: str
    runner_class: type[Runner] = Runner
    applies_precision: bool = False
    int8_float_depthwise: bool = False
    default_opset: int | None = None  # None: the exporter's default
    device_roles: tuple[str, ...] = ("model", "weights")  # the artifact files a device needs to run it
    device_note: str = ""  # what a device user must know before the first run (bundle README)
    host_packages: tuple[str, ...] = ()  # host-only packages the backend needs beside its runtime
    stand_in: str | None = "ort"
    device_built: str | None = None  # a file run.py builds on the device on first use (bundle --fetch-engine)

    @property
    def runtime(self) -> runtimes.Runtime:
        return runtimes.get(self.name)

    def cannot_run(self) -> str | None:
        """Why this machine cannot run this backend's artifacts, or None."""
        return None

    def device_built_record(self, path: Path) -> dict:
        """What ``device_built``, fetched from a device into ``path``, is valid for (the manifest records it)."""
        return {}

    def cannot_win(self, precision: str) -> str | None:
        """Why an artifact of ``precision`` cannot be this backend's fastest on this machine (optimize skips it
        unless asked for that precision), or None."""
        return None

    def available(self) -> str | None:
        """None when the backend can be used here (export, parity), else why not, with the install hint."""
        return None

    def precision_notes(self) -> list[str]:
        """How this runtime runs each precision on this CPU, as the runtime itself says (doctor)."""
        return []

    def install_hint(self) -> str:
        """How to install the runtime and host packages here: the versions constraints.txt pins, the same
        command wherever a hint is shown (doctor, a missing runtime)."""
        return f"pip install -c constraints.txt {' '.join((self.runtime.package, *self.host_packages))}"

    @abstractmethod
    def compile(self, onnx_path: Path, folder: Path, precision: str, int8) -> Compiled:
        """Turn ``onnx_path`` into this runtime's files inside ``folder``; ``int8`` is an Int8Request."""

    def open(self, path: Path, precision: str, threads: int | None = None, name: str = "") -> Runner:
        return self.runner_class(self.name, path, precision, threads, name=name or self.name)

    def load(self, artifact: Artifact, threads: int | None = None) -> Runner:
        """The artifact (or bundle) folder's model, as the device opens it."""
        try:
            path = self.runtime.model_file(artifact.path, artifact.manifest)
        except runtimes.RuntimeProblem as exc:
            raise UserError(str(exc)) from None
        return self.open(path, artifact.precision, threads)

    def describe(self, report: dict) -> list[str]:
        """The lines the CLI prints about this backend's part of an export's precision report."""
        return []

    def runtime_version(self) -> str | None:
        """The installed runtime's version, or None (the same lookup the device runner makes)."""
        return runtimes.installed_version(self.name)

    def runtime_requirement(self, artifact: Artifact) -> dict:
        """The runtime versions that can run ``artifact``: {"package", "min", "below", "why"} (None: unbounded).
        By default the version that made it, with no upper bound."""
        package = self.runtime.package
        made_with = artifact.manifest["runtime"].get(package)
        return {"package": package, "min": made_with, "below": None,
                "why": f"{artifact.backend} files written by {package} {made_with}"}

    def graph_requirement(self, onnx_path: Path) -> dict:
        """The versions of this backend's runtime that run the ONNX at ``onnx_path`` (stand-ins only)."""
        raise NotImplementedError(f"{self.name} is no stand-in for ONNX graphs")
