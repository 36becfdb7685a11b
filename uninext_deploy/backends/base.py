"""The one Backend idea: compile an ONNX into artifact files; load an artifact into a Runner.

Parity, profiling and bundles talk only to :class:`Runner` objects, so a new runtime is one more
:class:`Backend` and no harness ever asks which runtime it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..artifact import Artifact
from ..export.precision import Int8Request


@dataclass
class Compiled:
    """What ``Backend.compile`` wrote: {file name: role}, and a report for the manifest."""

    files: dict[str, str]
    report: dict = field(default_factory=dict)


class Runner(ABC):
    """A loaded artifact: ``run`` maps an input batch to the output batch."""

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def info(self) -> dict:
        """Runtime, version, device, threads and precision actually in use."""

    def device_times_ms(self, runs: int) -> list[float]:
        """Per-run time measured on the accelerator itself (no host copies), for runtimes that can tell;
        empty otherwise. Call after ``run`` has seen an input."""
        return []

    def per_layer_profile(self, x: np.ndarray, runs: int = 10) -> list[dict]:
        """Time per layer as [{"name", "op", "ms"}], slowest first; empty where the runtime cannot tell."""
        return []


class Backend(ABC):
    """``applies_precision``: False when the backend runs the precision graph it is given (the FP16-typed
    or QDQ ONNX, shared with TensorRT); True when it takes the float graph and applies the precision
    itself (OpenVINO: compressed FP16 weights, NNCF INT8 from the same calibration data)."""

    name: str
    runtime_package: str
    applies_precision: bool = False
    default_opset: int | None = None  # None: the exporter's default
    device_roles: tuple[str, ...] = ("model", "weights")  # the artifact files a device needs to run it
    device_note: str = ""  # what a device user must know before the first run (bundle README)

    def cannot_run(self) -> str | None:
        """Why this machine cannot run this backend's artifacts (then parity checks the ONNX it was
        given with ONNX Runtime instead), or None."""
        return None

    def available(self) -> str | None:
        """None when the runtime can be used here, else why not (one line, with the install hint)."""
        return None

    @abstractmethod
    def compile(self, onnx_path: Path, folder: Path, precision: str, int8: Int8Request | None) -> Compiled:
        """Turn ``onnx_path`` into this runtime's files inside ``folder``."""

    @abstractmethod
    def load(self, artifact: Artifact, threads: int | None = None) -> Runner: ...

    def runtime_version(self) -> str | None:
        """The installed runtime's version, or None (the same lookup the device runner makes)."""
        from ..device.runtimes import installed_version

        return installed_version(self.name)

    def runtime_requirement(self, artifact: Artifact) -> dict:
        """The runtime versions that can run ``artifact``: {"package", "min", "below", "why"} (None: unbounded).
        By default the version that made it, with no upper bound."""
        made_with = artifact.manifest["runtime"].get(self.runtime_package)
        return {"package": self.runtime_package, "min": made_with, "below": None,
                "why": f"{artifact.backend} files written by {self.runtime_package} {made_with}"}

    def device_requirements(self, requirement: dict) -> list[str]:
        """requirements.txt lines that install the runtime on the device."""
        from ..device.runtimes import spec

        return [spec(requirement)]
