"""Open a model with its runtime on the device: numpy and the one runtime, nothing else.

``load(backend, path, precision, threads)`` returns ``(run, info)``: ``run`` maps an input batch to
the output batch. Bundles ship this file as ``runtimes.py``; the ARM worker and the host OpenVINO
backend use the same choices (thread count, OpenVINO inference precision).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def version_tuple(text: str) -> tuple[int, ...]:
    """"1.17.3" -> (1, 17, 3); "2026.4.1-20000-abc" -> (2026, 4, 1); stops at the first non-number."""
    parts = []
    for piece in text.split("-")[0].split("+")[0].split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def version_problem(installed: str, requirement: dict) -> tuple[bool, str] | None:
    """(fatal, why) when ``installed`` is outside ``requirement`` ({"package", "min", "below", "why"}), else
    None. Too old is fatal (the model will not load); newer than the range is a warning."""
    have = version_tuple(installed)
    if requirement.get("min") and have < version_tuple(requirement["min"]):
        return True, (f"{requirement['package']} {installed} is older than {requirement['min']} "
                      f"({requirement['why']}); install it with: pip install '{spec(requirement)}'")
    if requirement.get("below") and have >= version_tuple(requirement["below"]):
        return False, f"{requirement['package']} {installed} is newer than this bundle was made for ({spec(requirement)})"
    return None


def spec(requirement: dict) -> str:
    """The pip requirement string, e.g. "onnxruntime>=1.17,<2"."""
    bounds = [f">={requirement['min']}"] if requirement.get("min") else []
    bounds += [f"<{requirement['below']}"] if requirement.get("below") else []
    return requirement["package"] + ",".join(bounds)


def installed_version(backend: str) -> str | None:
    """The version of ``backend``'s runtime ("ort", "openvino", "trt"), or None when it is not installed."""
    try:
        if backend == "ort":
            import onnxruntime

            return onnxruntime.__version__
        if backend == "openvino":
            import openvino

            return openvino.get_version().split("-")[0]
        if backend == "trt":
            import tensorrt

            return tensorrt.__version__
    except ImportError:
        return None
    raise ValueError(f"unknown backend {backend!r}")


def inference_precision(precision: str, capabilities: list[str]) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT for an artifact of ``precision``: always explicit, since the CPU
    plugin otherwise runs FP32 models in bf16 (x86 with AMX/AVX512-BF16) or f16 (ARM)."""
    if precision != "fp16":
        return "f32"
    return "f16" if "FP16" in capabilities else "bf16" if "BF16" in capabilities else "f32"


def load(backend: str, path: Path, precision: str, threads: int | None = None):
    """``(run, info)`` for the model file at ``path`` ("ort": .onnx, "openvino": .xml, "trt": .engine)."""
    opener = {"ort": _onnxruntime, "openvino": _openvino, "trt": _tensorrt}.get(backend)
    if opener is None:
        raise ValueError(f"unknown backend {backend!r}")
    return opener(Path(path), precision, threads)


def _onnxruntime(path: Path, precision: str, threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    info = {"runtime": "onnxruntime", "version": ort.__version__, "device": "CPU", "threads": threads or "default"}
    return (lambda x: session.run(None, {name: x})[0]), info


def _openvino(path: Path, precision: str, threads: int | None):
    import openvino as ov

    core = ov.Core()
    hint = inference_precision(precision, core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    info = {"runtime": "openvino", "version": ov.get_version(), "device": "CPU", "inference_precision": hint,
            "threads": compiled.get_property("INFERENCE_NUM_THREADS")}
    return (lambda x: request.infer({0: x})[0].copy()), info


def _tensorrt(path: Path, precision: str, threads: int | None):
    """A TensorRT engine with device buffers from cuda-python (no torch on the device)."""
    import tensorrt as trt

    import build_engine  # shipped beside this file in TensorRT bundles

    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart  # cuda-python < 12.6

    header, plan = build_engine.read_engine(path)
    problem = build_engine.engine_mismatch(header, trt.__version__, build_engine.gpu_identity())
    if problem:
        raise RuntimeError(f"engine {path} was {problem}; delete it and run again to rebuild it here")
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    shapes = {n: tuple(engine.get_tensor_shape(n)) for n in names}
    pointers = {}
    for name in names:
        error, pointer = cudart.cudaMalloc(int(np.prod(shapes[name])) * 4)
        _cuda_check(error, "cudaMalloc")
        pointers[name] = pointer
        context.set_tensor_address(name, int(pointer))
    source = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    sink = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
    error, stream = cudart.cudaStreamCreate()
    _cuda_check(error, "cudaStreamCreate")
    kind = cudart.cudaMemcpyKind

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.empty(shapes[sink], dtype=np.float32)
        _cuda_check(cudart.cudaMemcpyAsync(pointers[source], x.ctypes.data, x.nbytes,
                                           kind.cudaMemcpyHostToDevice, stream)[0], "copy in")
        if not context.execute_async_v3(int(stream)):
            raise RuntimeError("TensorRT execution failed")
        _cuda_check(cudart.cudaMemcpyAsync(y.ctypes.data, pointers[sink], y.nbytes,
                                           kind.cudaMemcpyDeviceToHost, stream)[0], "copy out")
        _cuda_check(cudart.cudaStreamSynchronize(stream)[0], "synchronize")
        return y

    info = {"runtime": "tensorrt", "version": trt.__version__, "device": header.get("gpu"),
            "strongly_typed": header.get("strongly_typed")}
    return run, info


def _cuda_check(error, what: str) -> None:
    if int(error) != 0:
        raise RuntimeError(f"CUDA {what} failed with error {int(error)}")
