"""The one code that opens, version-checks and runs a model file, on the host and on the device.

numpy and the one runtime, nothing else: bundles ship this file verbatim as ``runtimes.py``; the host's
runners (``uninext_deploy/backends``) wrap :func:`load` and add only host extras (per-layer profiles,
accelerator-side timing). Each runtime is declared once, as data, in :data:`RUNTIMES`: its package and
version lookup, how it opens a model, which file of a folder it runs, how to install it, and the
platforms and CPUs it supports or refuses, with the reason. Adding a runtime is one declaration here
plus one backend module.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

PLATFORMS = ("linux/x86_64", "linux/arm64")
RUNNER_PACKAGES = ("numpy", "pillow")  # what run.py itself imports, beside its runtime
GRAPH_RUNTIME = "ort"  # runs plain ONNX graphs wherever the host needs a reference: simplifier, quantizer
# and divergence checks, and the graph of a runtime that cannot run here


class RuntimeProblem(Exception):
    """The runtime cannot run the model here for a reason the user can fix (one line, with the fix)."""


@dataclass
class Session:
    """A model opened by its runtime. ``run`` maps an input batch to {output name: output batch}, in the
    model's output order; ``info`` says what runs it (runtime, version, device, threads, precision);
    ``native`` holds the runtime's own objects, for host extras; ``inputs`` and ``outputs`` are the model's
    own description of its tensors, [{name, shape, dtype}] in its order (checked against the manifest)."""

    run: Callable[[np.ndarray], dict[str, np.ndarray]]
    info: dict
    native: dict = field(default_factory=dict)
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)


def tensor_entry(name: str, shape, dtype) -> dict:
    """One model tensor as the manifest describes it: dims as ints (a dynamic one as its name), numpy dtype name."""
    return {"name": name, "shape": [d if isinstance(d, int) else str(d) for d in shape], "dtype": np.dtype(dtype).name}


@dataclass(frozen=True)
class Runtime:
    """Everything about one runtime that any code needs to know.

    ``opener(path, precision, threads, **extras)`` opens a model file; ``model_file(folder, manifest)`` is
    the file of an artifact or bundle folder that it runs; ``emulation`` is None when the emulated aarch64
    CPU runs it here, else why not; ``cpu_refusal(cpu, precision)`` says why it cannot run on an emulated
    CPU model, or None; ``device_packages(requirement)`` are the requirements.txt lines that install it;
    ``cpp_source`` is its C++ runner's source, built and verified before a bundle ships it.
    """

    name: str  # the backend name, as in manifest["backend"]
    title: str
    package: str  # the pip distribution
    module: str  # the import name
    version: Callable[[], str]
    opener: Callable[..., Session]
    install: str  # how to install it, "{spec}" standing for the version range
    model_file: Callable[[Path, dict], Path]
    device_packages: Callable[[dict], list[str]]
    emulation: str | None = None
    cpu_refusal: Callable[[str, str], str | None] = lambda cpu, precision: None
    platforms: tuple[str, ...] = PLATFORMS
    cpp_source: str | None = None  # the bundle's C++ runner for it (uninext_deploy/cpp), None: why in cpp_missing
    # third-party include folders that runner needs beyond the common ones:
    # {include name: (Debian package/suite, folder in the package, what it is and its licence)}
    cpp_headers: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    cpp_missing: str = ""
    # the versions its C++ runner runs on, from the model's requirement and the headers' folder it was built
    # with (None: the model's), and how that runner finds the runtime's library (its README)
    cpp_requirement: Callable[[dict, Path], dict] | None = None
    cpp_library_note: str = ""

    def install_hint(self, requirement: dict | None = None) -> str:
        return self.install.format(spec=spec(requirement) if requirement else self.package)


def version_tuple(text: str) -> tuple[int, ...]:
    """"1.17.3" -> (1, 17, 3); "2026.4.1-20000-abc" -> (2026, 4, 1); stops at the first non-number."""
    parts = []
    for piece in text.split("-")[0].split("+")[0].split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def spec(requirement: dict) -> str:
    """The pip requirement string, e.g. "onnxruntime>=1.17,<2"."""
    bounds = [f">={requirement['min']}"] if requirement.get("min") else []
    bounds += [f"<{requirement['below']}"] if requirement.get("below") else []
    return requirement["package"] + ",".join(bounds)


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


SATURATION = "this x86 CPU has no VNNI: its INT8 kernels saturate on 8-bit weights"


@functools.lru_cache(maxsize=None)
def int8_dot_saturates() -> bool:
    """True where the CPU runtimes' INT8 kernels saturate on 8-bit weights: on an x86 CPU with AVX2 or AVX-512
    but no VNNI, ONNX Runtime's MLAS and OpenVINO's oneDNN add pairs of u8 x s8 products into int16
    (vpmaddubsw); 7-bit weights (--int8-weight-bits 7) stay exact there. VNNI (vpdpbusd), AMX and ARM's dot
    products accumulate in int32. Asked of the kernels themselves: one integer GEMM through ONNX Runtime
    whose exact sums need int32 (:func:`_int8_gemm_saturates`). CPUID read by hand misled: under qemu's
    AVX2-only EPYC-Rome on an Intel Xeon, /proc/cpuinfo is the host's (avx_vnni) while the kernels see
    EPYC-Rome and saturate; an SSE4-only CPU has no vpmaddubsw kernel at all. ConvMLP-S at 96 px, QDQ INT8 on
    ORT, cosine to its float graph on EPYC-Rome: 8-bit weights 0.960, 7-bit 0.997 (as on a VNNI host); on a
    real AVX2-only EPYC its 8-bit bundle reached 0.942 to PyTorch. Where ONNX Runtime is not installed (an
    OpenVINO-only device) the answer is CPUID as numpy read it: no AVX-512 VNNI (which misses AVX-VNNI alone)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        return _int8_gemm_saturates()
    except ImportError:
        pass
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, numpy 1
        try:
            features = importlib.import_module(module).__cpu_features__
            return bool(features.get("AVX2")) and not features.get("AVX512VNNI")
        except (ImportError, AttributeError):
            continue
    return False


def _int8_gemm_saturates() -> bool:
    """MatMulInteger of u8 255s by s8 127s over K=64 in ONNX Runtime: exact 64 * 255 * 127 = 2,072,640; a
    kernel adding pairs in int16 gives 32 * 32,767. The model is written as protobuf bytes here, since a
    device has onnxruntime but not the onnx package; the weights are an initializer, as in a QDQ graph."""
    import onnxruntime as ort

    rows, k, cols = 4, 64, 16
    weights = _tensor("b", [k, cols], 3, np.full((k, cols), 127, np.int8).tobytes())
    graph = (_message(1, _text(1, "a") + _text(1, "b") + _text(2, "y") + _text(4, "MatMulInteger"))
             + _text(2, "probe") + _message(5, weights)
             + _message(11, _value_info("a", 2, [rows, k])) + _message(12, _value_info("y", 6, [rows, cols])))
    model = _number(1, 8) + _message(7, graph) + _message(8, _text(1, "") + _number(2, 13))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"a": np.full((rows, k), 255, np.uint8)})
    return not np.all(y == k * 255 * 127)


# protobuf's wire format, as much of it as the probe model needs: varints (wire type 0) and
# length-delimited fields (2); field numbers are onnx.proto's
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append(value & 0x7F | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _number(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _message(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _text(field: int, text: str) -> bytes:
    return _message(field, text.encode())


def _tensor(name: str, dims: list[int], data_type: int, raw: bytes) -> bytes:
    return b"".join(_number(1, d) for d in dims) + _number(2, data_type) + _text(8, name) + _message(9, raw)


def _value_info(name: str, elem_type: int, dims: list[int]) -> bytes:
    shape = b"".join(_message(1, _number(1, d)) for d in dims)
    return _text(1, name) + _message(2, _message(1, _number(1, elem_type) + _message(2, shape)))


def get(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise ValueError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def installed_version(name: str) -> str | None:
    """The installed version of runtime ``name``, or None when it is not installed."""
    try:
        return get(name).version()
    except ImportError:
        return None


def checked_version(name: str, requirement: dict) -> tuple[str, str | None]:
    """(installed version, warning or None) for ``requirement``; RuntimeProblem when the runtime is missing or
    too old, naming how to install the right one."""
    runtime = get(name)
    installed = installed_version(name)
    if installed is None:
        raise RuntimeProblem(f"{runtime.package} is not installed; {runtime.install_hint(requirement)} "
                             "(or pip install -r requirements.txt)")
    problem = version_problem(installed, requirement)
    if problem and problem[0]:
        raise RuntimeProblem(problem[1])
    return installed, problem[1] if problem else None


def emulation_problem(name: str, precision: str, cpu: str) -> str | None:
    """Why runtime ``name`` cannot run a ``precision`` model on the emulated aarch64 ``cpu`` here, or None."""
    runtime = get(name)
    if runtime.emulation:
        runnable = " and ".join(r.title for r in RUNTIMES.values() if r.emulation is None)
        return f"--platform linux/arm64 runs {runnable} artifacts here; {name} {runtime.emulation}"
    return runtime.cpu_refusal(cpu, precision)


def load(name: str, path: Path, precision: str, threads: int | None = None, **extras) -> Session:
    """Open the model file at ``path`` with runtime ``name`` ("ort": .onnx, "openvino": .xml, "trt": an
    engine) for an artifact of ``precision``, on ``threads`` CPU threads (None: the runtime's default)."""
    return get(name).opener(path if isinstance(path, bytes) else Path(path), precision, threads, **extras)


def file_with_role(folder: Path, manifest: dict, role: str = "model") -> Path:
    for name, entry in manifest["files"].items():
        if entry["role"] == role:
            return Path(folder) / name
    raise RuntimeProblem(f"{folder} lists no {role} file in its manifest; re-export it")


# --- ONNX Runtime ---------------------------------------------------------------------------------------

def usable_cpus() -> int:
    """The CPUs this process may run on (taskset, a container's cpuset, a pinned worker), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def allowed_cpus() -> int | None:
    """:func:`usable_cpus` where it is fewer than the machine has, else None. ONNX Runtime's default pool takes
    every core and pins its threads there, leaving the process's CPU set: ConvMLP-S under `taskset -c 0` on
    this 2-core machine ran 26-30 ms a run on both cores (47 ms on the one it was given), beside whatever else
    was given the other; OpenVINO and PyTorch keep to the set."""
    usable = usable_cpus()
    return usable if usable < (os.cpu_count() or usable) else None



def _onnxruntime(path: Path | bytes, precision: str, threads: int | None, profile_prefix: str | None = None,
                 optimization: str = "all") -> Session:
    """``path``: an .onnx file or a serialized model; ``optimization`` "basic" keeps the nodes as written
    (for comparing intermediate tensors), "all" fuses as a deployment does."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}[optimization]
    threads = threads or allowed_cpus()
    if threads:
        options.intra_op_num_threads = threads
        # sequential execution never uses the inter-op pool; one thread keeps it from spinning beside
        # the intra-op threads we asked for
        options.inter_op_num_threads = 1
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    session = ort.InferenceSession(path if isinstance(path, bytes) else str(path), options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    info = {"runtime": "onnxruntime", "version": ort.__version__, "device": "CPU",
            "threads": threads or "default", "providers": session.get_providers()}
    return Session(lambda x: dict(zip(outputs, session.run(None, {name: x}))), info,
                   {"session": session, "input": name},
                   [_ort_entry(t) for t in session.get_inputs()], [_ort_entry(t) for t in session.get_outputs()])


# ONNX Runtime names element types "tensor(float)"; numpy's names for the ones a model of ours can have
_ORT_TYPES = {"float": "float32", "float16": "float16", "double": "float64", "int64": "int64", "int32": "int32",
              "int8": "int8", "uint8": "uint8", "bool": "bool"}


def _ort_entry(tensor) -> dict:
    element = tensor.type.removeprefix("tensor(").removesuffix(")")
    return tensor_entry(tensor.name, tensor.shape, _ORT_TYPES.get(element, element))


def _onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


# --- OpenVINO -------------------------------------------------------------------------------------------

def inference_precision(precision: str, capabilities: list[str]) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT for an artifact of ``precision``: always explicit, since the CPU
    plugin otherwise runs FP32 models in bf16 (x86 with AMX/AVX512-BF16) or f16 (ARM)."""
    if precision != "fp16":
        return "f32"
    return "f16" if "FP16" in capabilities else "bf16" if "BF16" in capabilities else "f32"


def _openvino(path: Path, precision: str, threads: int | None, cache_dir: Path | None = None,
              perf_count: bool = False) -> Session:
    import openvino as ov

    core = ov.Core()
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(cache_dir)})
    hint = inference_precision(precision, core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
              "PERF_COUNT": perf_count}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    request = compiled.create_infer_request()
    outputs = [(o.get_any_name(), o) for o in compiled.outputs]

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        result = request.infer({0: x})
        return {name: result[port].copy() for name, port in outputs}

    info = {"runtime": "openvino", "version": ov.get_version(), "device": "CPU",
            "inference_precision": compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
            "threads": compiled.get_property("INFERENCE_NUM_THREADS")}
    return Session(run, info, {"compiled": compiled, "request": request},
                   [_openvino_entry(port) for port in compiled.inputs], [_openvino_entry(port) for port in compiled.outputs])


def _openvino_entry(port) -> dict:
    shape = port.get_partial_shape()
    return tensor_entry(port.get_any_name(), shape.to_shape() if shape.is_static else shape,
                        port.get_element_type().to_dtype())


def _openvino_version() -> str:
    import openvino

    return openvino.get_version().split("-")[0]


def _openvino_cpu_refusal(cpu: str, precision: str) -> str | None:
    if cpu.split(",")[0] == "max" and "sme=off" not in cpu:
        return ("OpenVINO gives wrong results under qemu's -cpu max (its SME code path); use --cpu cortex-a76 "
                "(Orin / Raspberry Pi 5 class) or max,sme=off")
    if cpu == "cortex-a72" and precision == "int8":
        return "OpenVINO cannot compile INT8 models for cortex-a72 (no dotprod); use --cpu cortex-a76"
    return None


# --- TensorRT -------------------------------------------------------------------------------------------

ENGINE_FILES = ("model.engine", "model.plan")  # build_engine.py (with our header), trtexec (a bare plan)


def _engine_tools():
    """build_engine.py, the file beside this one (on the host as in TensorRT bundles): the engine format."""
    if "build_engine" not in sys.modules:
        spec = importlib.util.spec_from_file_location("build_engine", Path(__file__).with_name("build_engine.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["build_engine"] = module
    return sys.modules["build_engine"]


def _tensorrt_model_file(folder: Path, manifest: dict) -> Path:
    """The folder's engine; built here on first use from its ONNX (an engine is tied to one GPU and TensorRT
    version), by the same build_engine.py the folder ships."""
    folder = Path(folder)
    for name in ENGINE_FILES:
        if (folder / name).exists():
            return folder / name
    engine = folder / ENGINE_FILES[0]
    print(f"building the TensorRT engine for this GPU (once): {engine}", file=sys.stderr)
    _engine_tools().build(file_with_role(folder, manifest, "onnx"), engine, manifest["precision"],
                          timing_cache=folder / "timing.cache",
                          metadata={"model": manifest["model"]["name"], "input": manifest["input"]["shape"]})
    return engine


def _tensorrt(path: Path, precision: str, threads: int | None) -> Session:
    """A TensorRT engine with device buffers from cuda-python (no torch on the device)."""
    import tensorrt as trt

    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            raise RuntimeProblem("cuda-python is not installed; pip install cuda-python") from None
    tools = _engine_tools()
    with open(path, "rb") as f:
        with_header = f.read(len(tools.MAGIC)) == tools.MAGIC
    if with_header:
        header, plan = tools.read_engine(path)
        problem = tools.engine_mismatch(header, trt.__version__, tools.gpu_identity())
        if problem:
            raise RuntimeProblem(f"engine {path} was {problem}; delete it and run again to rebuild it here")
    else:  # a bare plan from trtexec
        header, plan = {"gpu": tools.gpu_identity()["gpu"]}, path.read_bytes()
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    if engine is None:
        raise RuntimeProblem(f"TensorRT {trt.__version__} cannot load {path} (another TensorRT version or GPU?); "
                             "delete it and run again to rebuild it here")
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
    sinks = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    error, stream = cudart.cudaStreamCreate()
    _cuda_check(error, "cudaStreamCreate")
    kind = cudart.cudaMemcpyKind

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        ys = {sink: np.empty(shapes[sink], dtype=np.float32) for sink in sinks}
        _cuda_check(cudart.cudaMemcpyAsync(pointers[source], x.ctypes.data, x.nbytes,
                                           kind.cudaMemcpyHostToDevice, stream)[0], "copy in")
        if not context.execute_async_v3(int(stream)):
            raise RuntimeError("TensorRT execution failed")
        for sink, y in ys.items():
            _cuda_check(cudart.cudaMemcpyAsync(y.ctypes.data, pointers[sink], y.nbytes,
                                               kind.cudaMemcpyDeviceToHost, stream)[0], "copy out")
        _cuda_check(cudart.cudaStreamSynchronize(stream)[0], "synchronize")
        return ys

    info = {"runtime": "tensorrt", "version": trt.__version__, "device": header.get("gpu"),
            "strongly_typed": header.get("strongly_typed")}
    entries = {n: tensor_entry(n, [int(d) for d in shapes[n]], trt.nptype(engine.get_tensor_dtype(n))) for n in names}
    return Session(run, info, {"context": context, "stream": stream, "cudart": cudart},
                   [entries[source]], [entries[sink] for sink in sinks])


def _cuda_check(error, what: str) -> None:
    if int(error) != 0:
        raise RuntimeError(f"CUDA {what} failed with error {int(error)}")


def _tensorrt_version() -> str:
    import tensorrt

    return tensorrt.__version__


def _onnxruntime_cpp_requirement(requirement: dict, include: Path) -> dict:
    """None older than the release of the headers' C API version (ORT_API_VERSION 21: 1.21), which the runner
    checks at start: 1.20.1 lacks API 21 (it segfaulted), wheels up to 1.18 ship no library."""
    header = (include / "onnxruntime/onnxruntime_c_api.h").read_text()
    api = int(re.search(r"^#define ORT_API_VERSION (\d+)", header, re.MULTILINE).group(1))
    if version_tuple(requirement["min"]) >= (1, api):
        return requirement
    return {**requirement, "min": f"1.{api}", "why": f"its headers' ONNX Runtime C API, version {api}"}


TENSORRT_INSTALL = ("on Jetson it comes with JetPack (python3-libnvinfer), elsewhere from NVIDIA's wheels "
                    "(pip install '{spec}'); the runner also needs pip install cuda-python")

RUNTIMES: dict[str, Runtime] = {runtime.name: runtime for runtime in (
    Runtime("ort", "ONNX Runtime", "onnxruntime", "onnxruntime", _onnxruntime_version, _onnxruntime,
            install="pip install '{spec}'", model_file=file_with_role,
            device_packages=lambda requirement: [spec(requirement)], cpp_source="ort.cpp",
            cpp_headers={"onnxruntime": ("libonnxruntime-dev/trixie", "usr/include/onnxruntime",
                                         "ONNX Runtime 1.21's C/C++ API, MIT")},
            cpp_requirement=_onnxruntime_cpp_requirement,
            cpp_library_note="It opens that package's library at start rather\nlinking it, so `cpp/build` holds no "
                             "link and the bundle stays verifiable by all its runners; it refuses an\nonnxruntime "
                             "older than its headers in one line, and reinstalling onnxruntime there needs no "
                             "rebuild."),
    Runtime("openvino", "OpenVINO", "openvino", "openvino", _openvino_version, _openvino,
            install="pip install '{spec}'", model_file=file_with_role,
            device_packages=lambda requirement: [spec(requirement)], cpu_refusal=_openvino_cpu_refusal,
            cpp_source="openvino.cpp",
            cpp_library_note="It links that package's library,\nwhose file name changes with every OpenVINO "
                             "release: after installing another openvino, rebuild it (else the\nsystem's loader "
                             "stops it before it starts, exit code 127)."),
    Runtime("trt", "TensorRT", "tensorrt", "tensorrt", _tensorrt_version, _tensorrt, install=TENSORRT_INSTALL,
            model_file=_tensorrt_model_file,
            device_packages=lambda requirement: [
                "cuda-python", f"# {spec(requirement)}: " + TENSORRT_INSTALL.split(" (pip")[0]],
            emulation="targets NVIDIA GPUs, which the emulated CPU lacks (use --target ort or openvino)",
            cpp_missing="TensorRT's C++ headers and libraries are not available where bundles are made, and untested "
                        "C++ is not shipped: build and time the engine with build_engine.sh (trtexec)"),
)}

