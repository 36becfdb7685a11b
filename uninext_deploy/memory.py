"""What an artifact costs in memory on the device: the peak resident memory of a process that runs it with
its runtime alone (``device/footprint.py``, a fresh interpreter without torch), and its files' size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .artifact import Artifact
from .backends import get_backend
from .device import runtimes
from .errors import UserError

FOOTPRINT = Path(__file__).parent / "device" / "footprint.py"


def footprint(artifact: Artifact, threads: int | None) -> dict:
    """{"peak_rss_mb", "runtime_rss_mb", "artifact_mb"} of ``artifact`` run by its own runtime."""
    backend = get_backend(artifact.backend)
    model = runtimes.get(backend.name).model_file(artifact.path, artifact.manifest)
    shape = ",".join(str(d) for d in artifact.input_shape)
    result = subprocess.run([sys.executable, str(FOOTPRINT), backend.name, str(model), artifact.precision,
                             str(threads or 0), shape], capture_output=True, text=True, timeout=600)
    if result.returncode:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise UserError(f"measuring the memory of {artifact.path} failed: {last}")
    measured = json.loads(result.stdout)
    size = sum(e["bytes"] for e in artifact.manifest["files"].values() if e["role"] in backend.device_roles)
    return {"peak_rss_mb": measured["peak_mb"], "runtime_rss_mb": measured["runtime_mb"],
            "artifact_mb": round(size / 1e6, 2)}
