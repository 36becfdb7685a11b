"""Precision table: each backend in FP32 / FP16 / INT8 (every calibration method), next to PyTorch eager.

    python benchmarks/precision.py
    python benchmarks/precision.py --models uninext_t --targets ort openvino --iters 30

Per row: p50 latency at batch 1, the speed-up over the same backend's FP32, and parity against PyTorch
on the shipped photos (cosine, top-1 agreement). Ratios within one run are what to compare.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from uninext_deploy import api
from uninext_deploy.backends import get_backend
from uninext_deploy.device.timing import measure
from uninext_deploy.models import create_model
from uninext_deploy.options import CALIB_METHODS, Int8Options
from uninext_deploy.parity import check_artifact
from uninext_deploy.pipeline import images_tensor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["convmlp_s", "uninext_t", "uninet_b1"])
    parser.add_argument("--targets", nargs="*", default=["ort"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--iters", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch 1, {args.threads} threads, p50 of {args.iters} runs; parity vs PyTorch on the shipped photos")
    print(f"{'model':<11} {'runner':<24} {'p50 ms':>7} {'vs fp32':>8} {'cosine':>9} {'top-1':>6}")
    for name in args.models:
        model = create_model(name)
        _, _, h, w = model.input_shape
        photos = images_tensor(model.spec.preprocessing(h, w), None)
        x = photos[:1]
        with torch.inference_mode():
            eager = measure(lambda: model(torch.from_numpy(x)), batch=1, warmup=5, iters=args.iters).p50_ms
        print(f"{name:<11} {'pytorch eager fp32':<24} {eager:7.1f}")
        for target in args.targets:
            fp32_ms = None
            # ORT runs our QDQ graph, one per calibration method; OpenVINO quantizes with NNCF's own method
            methods = [None] if get_backend(target).applies_precision else CALIB_METHODS
            configs = [("fp32", None), ("fp16", None)] + [("int8", m) for m in methods]
            for precision, method in configs:
                with tempfile.TemporaryDirectory() as root:
                    artifact = api.export(name, target, precision=precision, out=Path(root) / "a",
                                          int8=Int8Options(method=method) if method else None)
                    run = check_artifact(artifact, model, photos, x, threads=args.threads)
                    runner = get_backend(target).load(artifact, threads=args.threads)
                    ms = measure(lambda: runner.run(x), batch=1, warmup=5, iters=args.iters).p50_ms
                fp32_ms = fp32_ms or ms
                label = f"{target} {precision}" + (f" {method}" if method else " nncf" if precision == "int8" else "")
                print(f"{name:<11} {label:<24} {ms:7.1f} {fp32_ms / ms:7.2f}x {run.images.cosine:9.5f} "
                      f"{run.images.top1:6.2f}{'' if run.passed else '  FAIL'}", flush=True)


if __name__ == "__main__":
    main()
