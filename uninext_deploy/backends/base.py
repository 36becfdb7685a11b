"""The one Backend idea: compile an ONNX into artifact files; load an artifact into a Runner.

Parity, profiling and bundles talk only to :class:`Runner` objects, so a new runtime is one more
:class:`Backend` and no harness ever asks which runtime it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..artifact import Artifact


class Runner(ABC):
    """A loaded artifact: ``run`` maps an input batch to the output batch."""

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def info(self) -> dict:
        """Runtime, version, device, threads and precision actually in use."""

    def per_layer_profile(self, x: np.ndarray, runs: int = 10) -> list[dict]:
        """Time per layer as [{"name", "op", "ms"}], slowest first; empty where the runtime cannot tell."""
        return []


class Backend(ABC):
    name: str
    runtime_package: str

    def available(self) -> str | None:
        """None when the runtime can be used here, else why not (one line, with the install hint)."""
        return None

    @abstractmethod
    def compile(self, onnx_path: Path, folder: Path, precision: str) -> dict[str, str]:
        """Turn ``onnx_path`` into this runtime's files inside ``folder``; return {file name: role}."""

    @abstractmethod
    def load(self, artifact: Artifact, threads: int | None = None) -> Runner: ...

    def runtime_version(self) -> str | None:
        return None
