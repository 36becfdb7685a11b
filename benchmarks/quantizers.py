"""INT8 quantizers side by side on the same float ONNX, the same calibration photos and the same runner.

    python benchmarks/quantizers.py                                   # UniNeXt-T, ConvMLP-S, UniNet-B1 at 224
    python benchmarks/quantizers.py --models uninet_b1 --modelopt-python /work/venvs/modelopt/bin/python

Contestants (every one writes a QDQ ONNX that ONNX Runtime runs here and TensorRT would build on the device):
- ours: ORT ``quantize_static`` as export does it (symmetric, per-channel weights, percentile, float bias, the
  model's float scopes), then our Q/DQ placement (export/placement.py);
- ours without placement: the same graph as the quantizer writes it;
- NNCF on the ONNX model: symmetric preset, ``model_type=TRANSFORMER`` (its SmoothQuant on), fast bias
  correction (its default), the same float scopes; and with SmoothQuant off, and with full bias correction;
- ModelOpt's ONNX quantizer (``modelopt.onnx.quantization``, INT8, max calibration, float32 elsewhere), run in
  its own venv (it replaces onnxruntime with onnxruntime-gpu): pass ``--modelopt-python``.
Each gets: worst photo cosine to the float graph, ORT p50 (one interleaved race, 2 threads), the Conv/MatMul
layers ORT runs as integer kernels, and whether our TensorRT check accepts it (symmetric, zero point 0, no INT32
bias).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from uninext_deploy import api
from uninext_deploy.backends import get_backend
from uninext_deploy.backends.trt_check import check_for_tensorrt
from uninext_deploy.device import runtimes
from uninext_deploy.device.compare import compare, run_batched
from uninext_deploy.device.timing import race
from uninext_deploy.export.precision import Int8Quantizer, kept_float, quiet
from uninext_deploy.kernel_mix import kernel_mix
from uninext_deploy.backends.ort import OrtRunner
from uninext_deploy.pipeline import build_model, int8_request


def nncf_onnx(float_model: onnx.ModelProto, samples: np.ndarray, excluded: list[str], *, smooth_quant=True,
              fast_bias_correction=True) -> onnx.ModelProto:
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    name = float_model.graph.input[0].name
    advanced = AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters() if smooth_quant else
        AdvancedSmoothQuantParameters(convolution=-1, matmul=-1))
    with quiet():
        return nncf.quantize(float_model, nncf.Dataset([{name: s[None]} for s in samples]), subset_size=len(samples),
                             preset=nncf.QuantizationPreset.PERFORMANCE, model_type=nncf.ModelType.TRANSFORMER,
                             fast_bias_correction=fast_bias_correction, advanced_parameters=advanced,
                             ignored_scope=nncf.IgnoredScope(names=excluded, validate=False))


def modelopt(python: str, float_path: Path, samples: np.ndarray, excluded: list[str], out: Path) -> onnx.ModelProto:
    calib = out.with_suffix(".npy")
    np.save(calib, samples)
    command = [python, "-m", "modelopt.onnx.quantization", "--onnx_path", str(float_path), "--quantize_mode", "int8",
               "--calibration_data_path", str(calib), "--calibration_method", "max", "--output_path", str(out),
               "--high_precision_dtype", "fp32", "--calibration_eps", "cpu"]
    if excluded:
        command += ["--nodes_to_exclude", *[f"^{n}$" for n in excluded]]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return onnx.load(str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["uninext_t", "convmlp_s", "uninet_b1"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=100, help="runs per contestant, spread over 10 rounds")
    parser.add_argument("--calib-size", type=int, default=32)
    parser.add_argument("--modelopt-python", help="python of a venv with nvidia-modelopt[onnx] installed")
    args = parser.parse_args()
    print(f"batch 1, {args.threads} threads; cosine: worst photo vs the float graph\n")
    print("| model | quantizer | ORT p50 ms | vs FP32 | cosine | integer Conv/MatMul | TensorRT check | quantize s |\n"
          "|---|---|---|---|---|---|---|---|")
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            artifact = api.export(name, "ort", out=tmp / "fp32")
            float_path = artifact.file("model")
            float_model = onnx.load(str(float_path))
            request = int8_request(build_model(api.ModelOptions(name)), api.Int8Options(calib_size=args.calib_size),
                                   float_depthwise=get_backend("ort").int8_float_depthwise)
            excluded = kept_float(float_model, request)
            graphs, seconds = {"FP32": float_model}, {}

            def timed(key, make):
                start = time.perf_counter()
                try:
                    graphs[key] = make()
                except Exception as exc:  # a contestant that cannot run here is a row that says so
                    print(f"| {name} | {key} | failed: {str(exc).splitlines()[-1][:80]} | | | | | |", flush=True)
                seconds[key] = time.perf_counter() - start

            quantizer = Int8Quantizer(float_model, request.samples, 1, request.options)
            samples = request.samples.array()  # the other quantizers take every sample at once
            timed("ours (ORT quantize_static + placement)", lambda: quantizer.quantize(excluded))
            timed("ORT quantize_static as written", lambda: quantizer.quantize(excluded, place=False))
            quantizer.close()
            timed("NNCF ONNX", lambda: nncf_onnx(float_model, samples, excluded))
            timed("NNCF ONNX, SmoothQuant off", lambda: nncf_onnx(float_model, samples, excluded,
                                                                   smooth_quant=False))
            timed("NNCF ONNX, full bias correction", lambda: nncf_onnx(float_model, samples, excluded,
                                                                        fast_bias_correction=False))
            if args.modelopt_python:
                timed("ModelOpt ONNX", lambda: modelopt(args.modelopt_python, float_path, samples,
                                                        excluded, tmp / "modelopt.onnx"))
            _table(name, graphs, seconds, request, tmp, args)


def _table(name, graphs, seconds, request, tmp: Path, args) -> None:
    runners, mixes, cosines, checks = {}, {}, {}, {}
    x = request.check_inputs[:1]
    first, same = {}, {}  # graph digest -> its first key; key -> that first key (e.g. placement moved nothing)
    for i, (key, graph) in enumerate(graphs.items()):
        data = graph.SerializeToString()
        digest = hashlib.sha256(data).digest()
        if first.setdefault(digest, key) != key:
            same[key] = first[digest]
            continue
        path = tmp / f"g{i}.onnx"
        path.write_bytes(data)
        session = runtimes.load("ort", path, "fp32", args.threads)
        runners[key] = session.run
        cosines[key] = compare(run_batched(runners["FP32"], request.check_inputs, 1),
                               run_batched(session.run, request.check_inputs, 1)).cosine
        mixes[key] = kernel_mix(OrtRunner("ort", path, "fp32", args.threads).per_layer_profile(x, runs=3))
        check = check_for_tensorrt(graph, (10, 12))
        checks[key] = "accepted" if check.ok else f"{len(check.errors)} errors, e.g. {check.errors[0][:60]}"
    # 10 rounds: with 5, one UniNeXt-T graph raced against itself under another name differed by 33 % (72 vs 54 ms)
    latency = race({key: (lambda run=run: run(x)) for key, run in runners.items()}, batch=1, warmup=5,
                   iters=args.iters, rounds=10)
    base = latency["FP32"].p50_ms
    for key, lat in latency.items():
        mix = mixes[key]
        print(f"| {name} | {key} | {lat.p50_ms:.2f} | {base / lat.p50_ms:.2f}x | {cosines[key]:.4f} | "
              f"{mix.integer_matmuls} of {mix.integer_matmuls + mix.float_matmuls} | {checks[key]} | "
              f"{seconds.get(key, 0):.0f} |", flush=True)
    for key, twin in same.items():
        print(f"| {name} | {key} | the same graph as {twin} | | | | | {seconds.get(key, 0):.0f} |", flush=True)


if __name__ == "__main__":
    main()
