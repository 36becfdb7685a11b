"""This machine's GEMM roofline per runtime and precision: the throughput a large matrix multiply reaches,
measured once and cached per machine, so a model's latency can be read as a fraction of what the
runtime can do at that precision.

The micro-benchmark is one 1024^3 MatMul graph in the form our artifacts take at each precision:
float32, float16-typed, and QDQ INT8 (which ONNX Runtime fuses into an integer GEMM and OpenVINO runs as
int8). It runs through the same device runtimes as the artifacts, with the same thread count and the
same explicit OpenVINO inference precision.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .cache import cache_dir
from .device import runtimes
from .cpu import cpu_model

SIZE = 1024
ONNX_TYPES = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16, "int8": TensorProto.FLOAT}


def cache_file() -> Path:
    return cache_dir() / "roofline.json"


def machine_id() -> str:
    """CPU model and core count: what the roofline depends on besides runtime and threads."""
    return f"{cpu_model()} x{os.cpu_count()}"


def gemm_graph(precision: str, size: int = SIZE) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((size, size)).astype(np.float32) / np.sqrt(size)
    dtype = ONNX_TYPES[precision]
    inputs = [helper.make_tensor_value_info("a", dtype, [size, size])]
    outputs = [helper.make_tensor_value_info("y", dtype, [size, size])]
    if precision == "int8":
        scale = numpy_helper.from_array(np.array(4.0 / 127, np.float32), "scale")
        zero = numpy_helper.from_array(np.array(0, np.int8), "zero")
        w_scale = numpy_helper.from_array(np.array(np.abs(weights).max() / 127, np.float32), "w_scale")
        w_q = numpy_helper.from_array(np.clip(np.round(weights / (np.abs(weights).max() / 127)), -127, 127)
                                      .astype(np.int8), "w_q")
        nodes = [helper.make_node("QuantizeLinear", ["a", "scale", "zero"], ["a_q"]),
                 helper.make_node("DequantizeLinear", ["a_q", "scale", "zero"], ["a_dq"]),
                 helper.make_node("DequantizeLinear", ["w_q", "w_scale", "zero"], ["w"]),
                 helper.make_node("MatMul", ["a_dq", "w"], ["y"])]
        initializers = [scale, zero, w_scale, w_q]
    else:
        w = weights.astype(np.float16 if precision == "fp16" else np.float32)
        nodes = [helper.make_node("MatMul", ["a", "w"], ["y"])]
        initializers = [numpy_helper.from_array(w, "w")]
    graph = helper.make_graph(nodes, f"gemm_{precision}", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=9)


def measure_gemm(backend: str, precision: str, threads: int, size: int = SIZE, seconds: float = 1.5) -> float:
    """Best GFLOP/s of the ``size``^3 GEMM on ``backend`` at ``precision`` (0.0 where the runtime has no
    kernel for it)."""
    with tempfile.TemporaryDirectory(prefix="uninext-gemm-") as tmp:
        path = Path(tmp) / "gemm.onnx"
        onnx.save(gemm_graph(precision, size), str(path))
        try:
            run = runtimes.load(backend, path, precision, threads).run
        except Exception:  # e.g. no float16 MatMul kernel for this CPU in this runtime
            return 0.0
        a = np.random.default_rng(1).standard_normal((size, size)).astype(
            np.float16 if precision == "fp16" else np.float32)
        for _ in range(3):
            run(a)
        best, deadline = float("inf"), time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            run(a)
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def roofline(backend: str, precision: str, threads: int, refresh: bool = False,
             at_least: float | None = None) -> dict:
    """{"gflops", "measured", "key"} for ``backend`` at ``precision`` with ``threads`` threads, from the
    per-machine cache, measured on first use. A cached ceiling below ``at_least`` (a rate just reached on this
    machine) was measured in a busy moment and is measured again, the higher of the two kept: on this shared
    machine OpenVINO's FP32 GEMM was cached at 44.3 GFLOP/s while others' work ran, and ConvMLP-S then showed
    above 100 % of it."""
    key = f"{machine_id()} | {backend} {runtimes.installed_version(backend)} | {precision} | {threads} threads"
    path = cache_file()
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    stale = key in cache and at_least is not None and cache[key]["gflops"] < at_least
    if refresh or key not in cache or stale:
        measured = round(measure_gemm(backend, precision, threads), 1)
        cache[key] = {"gflops": max(measured, cache[key]["gflops"]) if stale else measured,
                      "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "gemm": f"{SIZE}^3"}
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        staged.write_text(json.dumps(cache, indent=1) + "\n")
        os.replace(staged, path)
    return dict(cache[key], key=key)
