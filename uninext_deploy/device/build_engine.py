#!/usr/bin/env python3
"""Build a TensorRT engine from an exported ONNX, on the device: needs only TensorRT's Python API.

uninext-deploy copies this file as ``build_engine.py`` into every TensorRT export folder:

    python3 build_engine.py                        # model.onnx -> model.engine, precision from manifest.json
    python3 build_engine.py --dla-core 0           # Jetson DLA, GPU fallback for unsupported layers
    python3 build_engine.py --print-settings       # the builder settings for this TensorRT, without building

Precision lives in the graph (FP16-typed or Q/DQ ONNX). TensorRT >= 10.12 builds it strongly typed, as
TensorRT 11 requires; older TensorRT (JetPack 6: 10.3, JetPack 5: 8.5) gets the FP16 / INT8 builder flags
that let it honour the same graph. TF32 is off for FP32 builds so that they match PyTorch FP32.
The engine file starts with a JSON header (TensorRT version, GPU, compute capability, model, shapes):
loading it under another TensorRT or on another GPU is refused with one clear message.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAGIC = b"UXTRTPLN"
STRONGLY_TYPED_SINCE = (10, 12)


def version_tuple(text: str) -> tuple[int, int]:
    major, minor = (text.split(".") + ["0"])[:2]
    return int(major), int(minor)


def builder_settings(trt_version: str, precision: str) -> dict:
    """Network flags and builder flags for ``precision`` under TensorRT ``trt_version``."""
    version = version_tuple(trt_version)
    strongly_typed = version >= STRONGLY_TYPED_SINCE
    flags = [] if strongly_typed else {"fp32": [], "fp16": ["FP16"], "int8": ["INT8"]}[precision]
    return {"tensorrt": trt_version, "precision": precision, "strongly_typed": strongly_typed,
            "explicit_batch_flag": version < (10, 0), "builder_flags": flags, "tf32": precision != "fp32"}


def gpu_identity() -> dict:
    """Name and compute capability of GPU 0, from the CUDA runtime or nvidia-smi."""
    try:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        err, props = cudart.cudaGetDeviceProperties(0)
        if int(err) == 0:
            name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
            return {"gpu": name.strip("\x00 "), "compute_capability": f"{props.major}.{props.minor}"}
    except Exception:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
        name, capability = (s.strip() for s in out.split(","))
        return {"gpu": name, "compute_capability": capability}
    except Exception:
        return {"gpu": "unknown", "compute_capability": "unknown"}


def write_engine(path: Path, header: dict, plan: bytes) -> None:
    """MAGIC, header length (uint32 LE), JSON header, then TensorRT's plan; written atomically."""
    blob = json.dumps(header, sort_keys=True).encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(blob)) + blob + plan)
    os.replace(tmp, path)


def read_engine(path: Path) -> tuple[dict, bytes]:
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not an engine written by uninext-deploy (no header)")
    (length,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    return json.loads(data[start:start + length]), data[start + length:]


def engine_mismatch(header: dict, trt_version: str, gpu: dict) -> str | None:
    """Why an engine with ``header`` cannot run here, or None. Engines are tied to both."""
    if header.get("tensorrt") != trt_version:
        return f"built with TensorRT {header.get('tensorrt')}, this machine has {trt_version}"
    if header.get("compute_capability") != gpu["compute_capability"]:
        return (f"built for {header.get('gpu')} (compute capability {header.get('compute_capability')}), this "
                f"machine has {gpu['gpu']} ({gpu['compute_capability']})")
    return None


def build(onnx_path: Path, engine_path: Path, precision: str, *, workspace_mb: int = 4096,
          dla_core: int | None = None, timing_cache: Path | None = None, allow_tf32: bool = False,
          metadata: dict | None = None) -> dict:
    """Parse ``onnx_path``, build the engine and write it with its header; return the header."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    settings = builder_settings(trt.__version__, precision)
    builder = trt.Builder(logger)
    flags = 0
    if settings["strongly_typed"]:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if settings["explicit_batch_flag"]:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT {trt.__version__} could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    for flag in settings["builder_flags"]:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if not (settings["tf32"] or allow_tf32) and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.exists() else b""
    config.set_timing_cache(config.create_timing_cache(cache_bytes), ignore_mismatch=False)
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    start = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT failed to build the engine; see its log above")
    if timing_cache is not None:
        timing_cache.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    header = dict(metadata or {}, **settings, **gpu_identity(), dla_core=dla_core,
                  build_seconds=round(time.perf_counter() - start, 1))
    write_engine(engine_path, header, bytes(memoryview(plan)))
    return header


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", type=Path, default=here / "model.onnx")
    parser.add_argument("--engine", type=Path, default=here / "model.engine")
    parser.add_argument("--precision", choices=["fp32", "fp16", "int8"], help="default: from manifest.json")
    parser.add_argument("--workspace-mb", type=int, default=4096)
    parser.add_argument("--dla-core", type=int)
    parser.add_argument("--timing-cache", type=Path, default=here / "timing.cache")
    parser.add_argument("--allow-tf32", action="store_true", help="let FP32 layers use TF32 (faster, ~1e-3 error)")
    parser.add_argument("--print-settings", action="store_true", help="print the builder settings and stop")
    parser.add_argument("--trt-version", help="with --print-settings: for this TensorRT instead of the installed")
    args = parser.parse_args()
    manifest_path = here / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    precision = args.precision or manifest.get("precision")
    if precision is None:
        sys.exit("error: no --precision and no manifest.json beside this script")
    if args.print_settings:
        version = args.trt_version or __import__("tensorrt").__version__
        print(json.dumps(builder_settings(version, precision), indent=2))
        return
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        sys.exit("error: TensorRT's Python package is not installed; on Jetson it comes with JetPack "
                 "(python3-libnvinfer), elsewhere `pip install tensorrt`")
    metadata = {"model": manifest.get("model", {}).get("name"), "input": manifest.get("input"),
                "outputs": manifest.get("outputs")}
    try:
        header = build(args.onnx, args.engine, precision, workspace_mb=args.workspace_mb, dla_core=args.dla_core,
                       timing_cache=args.timing_cache, allow_tf32=args.allow_tf32, metadata=metadata)
    except RuntimeError as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {args.engine} (TensorRT {header['tensorrt']}, {header['gpu']}, {precision}, "
          f"{header['build_seconds']} s)")


if __name__ == "__main__":
    main()
