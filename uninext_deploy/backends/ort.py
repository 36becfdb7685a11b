"""ONNX Runtime on the CPU: the artifact is the ONNX itself."""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..artifact import Artifact
from ..console import progress
from ..device.runtimes import version_tuple
from .base import Backend, Compiled, Runner, open_session


class OrtRunner(Runner):
    def per_layer_profile(self, x: np.ndarray, runs: int = 10) -> list[dict]:
        """ONNX Runtime's own per-node trace, averaged over ``runs``, summed by node."""
        folder = Path(tempfile.mkdtemp(prefix="ort-profile-"))
        try:
            session = open_session(self.runtime, self.path, self.precision, self.threads,
                                   profile_prefix=str(folder / "trace"))
            with progress.step(f"per-layer profile of {self.name} ({runs + 1} traced runs)",
                               total=runs + 1) as profiling:
                for _ in range(runs + 1):
                    session.run(np.ascontiguousarray(x, dtype=np.float32))
                    profiling.advance()
                events = json.loads(Path(session.native["session"].end_profiling()).read_text())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
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
    runner_class = OrtRunner
    stand_in = None  # it is the stand-in
    # Its CPU EP runs QLinearConv in NHWC between transposes and float convs in NCHWc: a depthwise conv, memory
    # bound either way, gains nothing from INT8 and pays the Q/DQ and transposes around it, and an INT8 pointwise
    # conv beside a float depthwise one pays the layout change. 2 threads, one race each (ms, cosine to the float
    # graph), all convs INT8 -> depthwise float -> every conv of a depthwise block float: UniNet-B1 21.4 -> 17.6
    # -> 16.2 (0.986 -> 0.992 -> 0.997; its FP32 17.9); UniNeXt-T 61.3 -> 57.5 (0.998 -> 0.996) and ConvMLP-S
    # 12.3 -> 11.9 (0.999), whose depthwise blocks hold no other conv. Measured on x86 only.
    int8_float_depthwise = True

    def compile(self, onnx_path: Path, folder: Path, precision: str, int8) -> Compiled:
        target = folder / "model.onnx"
        if onnx_path.resolve() != target.resolve():
            shutil.copyfile(onnx_path, target)
        return Compiled({"model.onnx": "model"})

    def cannot_win(self, precision: str) -> str | None:
        if precision == "fp16" and fp16_runs_through_casts():
            return ("ONNX Runtime has no FP16 Conv or MatMul kernel on this CPU (it wraps the FP32 ones in Casts, "
                    "asked of ONNX Runtime itself): an FP16 graph does FP32 arithmetic plus conversions")
        return None

    def precision_notes(self) -> list[str]:
        return ["FP16 graphs: FP32 kernels behind Casts on this CPU (slower than FP32)" if fp16_runs_through_casts()
                else "FP16 graphs: FP16 Conv and MatMul kernels on this CPU"]

    def describe(self, report: dict) -> list[str]:
        from ..export.precision import describe

        return describe(report)

    def runtime_requirement(self, artifact: Artifact) -> dict:
        return onnxruntime_requirement(artifact.file("model"))

    def graph_requirement(self, onnx_path: Path) -> dict:
        return onnxruntime_requirement(onnx_path)


# how ONNX Runtime's InsertCastTransformer names the Casts it puts around a node with no kernel for its type
INSERTED_CAST = "InsertedPrecisionFreeCast"


@functools.lru_cache(maxsize=None)
def fp16_runs_through_casts() -> bool:
    """Whether ONNX Runtime's CPU kernels for an FP16 Conv and MatMul are FP32 ones behind inserted Casts, as
    the graph ONNX Runtime optimizes for this CPU shows. Asked rather than read from CPU flags: an x86 CPU with
    AVX512-FP16 (an Intel Xeon) still gets Casts from ORT 1.31, ARM builds with FP16 kernels do not, and
    /proc/cpuinfo under an emulator is the host's. UniNeXt-T at 224, 2 threads, on a CPU that casts: FP16
    67.8 ms against FP32 54.2 ms."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weights = [numpy_helper.from_array(np.ones((16, 16), np.float16), "w"),
               numpy_helper.from_array(np.ones((8, 8, 3, 3), np.float16), "k")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Conv", ["image", "k"], ["maps"])],
        "fp16_probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [4, 16]),
                       helper.make_tensor_value_info("image", TensorProto.FLOAT16, [1, 8, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [4, 16]),
         helper.make_tensor_value_info("maps", TensorProto.FLOAT16, [1, 8, 6, 6])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with tempfile.TemporaryDirectory(prefix="ort-fp16-probe-") as folder:
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        options.log_severity_level = 3  # its warning that the saved graph is specific to this CPU is the point
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    return any(node.name.startswith(INSERTED_CAST) for node in optimized.graph.node)
