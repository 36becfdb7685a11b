"""OpenVINO on the CPU: IR (.xml/.bin) converted from the float ONNX; FP16 as compressed weights, INT8
quantized by NNCF on the shared calibration data.

The inference precision is always set explicitly: left alone, OpenVINO runs FP32 models in bf16 on
CPUs that have it (max abs ~1e-2 on a toy net) and in f16 on ARM. FP32 and INT8 artifacts run in f32
(INT8 keeps its non-quantized ops in f32); FP16 artifacts run in f16 where the CPU has it, else bf16.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import numpy as np

from ..artifact import Artifact
from ..device.runtimes import inference_precision
from ..divergence import module_path
from ..errors import MissingDependency, UserError
from ..export.precision import Int8Request
from ..parity import batched, compare, run_batched
from .base import Backend, Compiled, Runner

INSTALL_HINT = "install it with `pip install openvino nncf` to use --target openvino"
# Op types NNCF must leave in float, as on the ORT path (LayerNorm is MVN in OpenVINO).
FLOAT_OP_TYPES = ["Softmax", "MVN", "Gelu", "HSigmoid", "Clamp", "Divide"]


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "uninext-deploy" / "openvino"


class OpenVinoRunner(Runner):
    def __init__(self, xml: Path, precision: str, threads: int | None, cache_dir: Path | None):
        import openvino as ov

        self._core = ov.Core()
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            self._core.set_property({"CACHE_DIR": str(cache_dir)})
        self._xml = xml
        self._threads = threads
        self._precision = inference_precision(precision, self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        try:
            self._model = self._core.read_model(str(xml))
        except Exception as exc:
            raise UserError(f"cannot read OpenVINO IR {xml}: {str(exc).strip().splitlines()[0][:160]}; "
                            "re-export the artifact") from None
        self._compiled = self._compile(perf_count=False)
        self._request = self._compiled.create_infer_request()

    def _compile(self, perf_count: bool):
        config = {"INFERENCE_PRECISION_HINT": self._precision, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                  "PERF_COUNT": perf_count}
        if self._threads:
            config["INFERENCE_NUM_THREADS"] = self._threads
        return self._core.compile_model(self._model, "CPU", config)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})[0].copy()

    def info(self) -> dict:
        import openvino as ov

        return {"runtime": "openvino", "version": ov.get_version(), "device": "CPU",
                "threads": self._compiled.get_property("INFERENCE_NUM_THREADS"),
                "inference_precision": self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()}

    def per_layer_profile(self, x: np.ndarray, runs: int = 10) -> list[dict]:
        """OpenVINO's performance counters (executed layers after fusion), averaged over ``runs``."""
        request = self._compile(perf_count=True).create_infer_request()
        totals: dict[str, dict] = {}
        for _ in range(runs):
            request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
            for info in request.get_profiling_info():
                if info.status.name != "EXECUTED":
                    continue
                entry = totals.setdefault(info.node_name, {"name": info.node_name, "op": info.node_type,
                                                           "kernel": info.exec_type, "ms": 0.0})
                entry["ms"] += info.real_time.total_seconds() * 1000.0 / runs
        return sorted(totals.values(), key=lambda e: -e["ms"])


class OpenVinoBackend(Backend):
    name = "openvino"
    runtime_package = "openvino"
    applies_precision = True

    def available(self) -> str | None:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return str(MissingDependency("openvino", INSTALL_HINT))
        return None

    def compile(self, onnx_path: Path, folder: Path, precision: str, int8: Int8Request | None) -> Compiled:
        import openvino as ov

        model = ov.convert_model(str(onnx_path))
        report = {"inference_precision": "f16 where the CPU has it, else bf16" if precision == "fp16" else "f32"}
        if precision == "int8":
            model, quant_report = _quantize(model, int8)
            report.update(quant_report)
        ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=precision == "fp16")
        return Compiled({"model.xml": "model", "model.bin": "weights"}, report)

    def load(self, artifact: Artifact, threads: int | None = None, cache_dir: Path | None = None) -> Runner:
        return OpenVinoRunner(artifact.file("model"), artifact.precision, threads, cache_dir or default_cache_dir())


def _quantize(model, request: Int8Request):
    """NNCF post-training quantization, keeping the same ops and scopes float as the ORT path.

    ``model_type=TRANSFORMER`` for every family, as measured (cosine of the INT8 IR to the float IR on
    the shipped photos, without -> with): UniNeXt-T 0.900 -> 0.9992, UniNet-B1 0.986 -> 0.9937,
    ConvMLP-S 0.9993 -> 0.9993.
    """
    import nncf
    import openvino as ov

    from ..export.precision import quiet

    ignored = [op.get_friendly_name() for op in model.get_ops()
               if any(fnmatch.fnmatchcase(module_path(op.get_friendly_name() + "/_") or "", p)
                      for p in request.float_patterns)]
    batches = batched(request.samples, request.batch)
    with quiet():
        quantized = nncf.quantize(
            model, nncf.Dataset(batches), subset_size=len(batches) * request.batch,
            model_type=nncf.ModelType.TRANSFORMER,
            ignored_scope=nncf.IgnoredScope(names=ignored, types=FLOAT_OP_TYPES, validate=False))
    core = ov.Core()

    def run(m):
        compiled = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return lambda x: compiled(x)[0]

    reference = run_batched(run(model), request.check_inputs, request.batch)
    cosine = compare(reference, run_batched(run(quantized), request.check_inputs, request.batch)).cosine
    return quantized, {"quantizer": f"nncf {nncf.__version__}", "model_type": "transformer",
                       "calib_size": len(request.samples), "calib": str(request.options.calib or "shipped"),
                       "kept_float": ignored, "kept_float_types": FLOAT_OP_TYPES, "cosine_vs_float": cosine}
