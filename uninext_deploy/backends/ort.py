"""ONNX Runtime on the CPU: the artifact is the ONNX itself."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..artifact import Artifact
from ..export.precision import Int8Request
from .base import Backend, Compiled, Runner


class OrtRunner(Runner):
    def __init__(self, model_path: Path, threads: int | None):
        import onnxruntime as ort

        self._path = model_path
        self._threads = threads
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def info(self) -> dict:
        import onnxruntime as ort

        return {"runtime": "onnxruntime", "version": ort.__version__, "device": "CPU",
                "threads": self._threads or os.cpu_count(), "providers": self._session.get_providers()}

    def per_layer_profile(self, x: np.ndarray, runs: int = 10) -> list[dict]:
        """ONNX Runtime's own per-node trace, averaged over ``runs``, summed by node."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="ort-profile-")) / "trace")
        if self._threads:
            options.intra_op_num_threads = self._threads
        session = ort.InferenceSession(str(self._path), options, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):
            session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})
        trace = Path(session.end_profiling())
        events = json.loads(trace.read_text())
        shutil.rmtree(trace.parent, ignore_errors=True)
        totals: dict[str, dict] = {}
        for event in events:
            if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
                continue
            name = event["name"].removesuffix("_kernel_time")
            entry = totals.setdefault(name, {"name": name, "op": event["args"].get("op_name", "?"), "us": 0.0})
            entry["us"] += event["dur"]
        layers = [{"name": e["name"], "op": e["op"], "ms": e["us"] / 1000.0 / (runs + 1)} for e in totals.values()]
        return sorted(layers, key=lambda e: -e["ms"])


# The first ONNX Runtime release implementing each ONNX opset, and reading each IR version (ORT's version matrix).
OPSET_SINCE = {17: "1.13", 18: "1.14", 19: "1.15", 20: "1.17", 21: "1.18"}
IR_SINCE = {8: "1.10", 9: "1.15", 10: "1.18"}


def onnxruntime_requirement(onnx_path: Path) -> dict:
    """The ONNX Runtime versions that run ``onnx_path``: from its opset and IR version, below ORT 2."""
    import onnx

    from ..device.runtimes import version_tuple

    model = onnx.load(str(onnx_path), load_external_data=False)
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    needs = [v for v in (OPSET_SINCE.get(opset), IR_SINCE.get(model.ir_version)) if v]
    if OPSET_SINCE.get(opset) is None or IR_SINCE.get(model.ir_version) is None:  # newer than the table
        import onnxruntime

        needs.append(".".join(onnxruntime.__version__.split(".")[:2]))
    return {"package": "onnxruntime", "min": max(needs, key=version_tuple), "below": "2",
            "why": f"ONNX opset {opset}, IR version {model.ir_version}"}


class OrtBackend(Backend):
    name = "ort"
    runtime_package = "onnxruntime"

    def compile(self, onnx_path: Path, folder: Path, precision: str, int8: Int8Request | None) -> Compiled:
        target = folder / "model.onnx"
        if onnx_path.resolve() != target.resolve():
            shutil.copyfile(onnx_path, target)
        return Compiled({"model.onnx": "model"})

    def load(self, artifact: Artifact, threads: int | None = None) -> Runner:
        return OrtRunner(artifact.file("model"), threads)

    def runtime_requirement(self, artifact: Artifact) -> dict:
        return onnxruntime_requirement(artifact.file("model"))
