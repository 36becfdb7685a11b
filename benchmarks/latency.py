"""Latency table: PyTorch eager vs an exported artifact, per model, measured in one run.

    python benchmarks/latency.py                       # the ConvMLP family on ONNX Runtime FP32
    python benchmarks/latency.py --family uninext --iters 30

Prints, per model at batch 1: eager p50, backend p50, their ratio, and the achieved GFLOP/s of each
(2 x MACs / p50 latency). Ratios are what to compare across runs: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os

from uninext_deploy import api
from uninext_deploy.models import count_macs, list_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="convmlp")
    parser.add_argument("--models", nargs="*", help="explicit model names (overrides --family)")
    parser.add_argument("--target", default="ort")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    names = args.models or list_models(args.family, official=True)
    header = (f"{'model':<18} {'GMACs':>7} {'eager p50 ms':>13} {args.target + ' p50 ms':>12} {'speed-up':>9} "
              f"{'eager GFLOP/s':>14} {args.target + ' GFLOP/s':>13}")
    print(f"batch 1, {args.threads} threads, {args.iters} timed runs after {args.warmup} warm-up\n{header}")
    for name in names:
        report = api.profile(name, args.target, timing=api.TimingOptions(args.threads, args.warmup, args.iters))
        gflop = 2 * count_macs(name) / 1e9
        eager, backend = report.eager.p50_ms, report.backend.p50_ms
        print(f"{name:<18} {gflop / 2:7.3f} {eager:13.2f} {backend:12.2f} {eager / backend:8.2f}x "
              f"{gflop / eager * 1e3:14.1f} {gflop / backend * 1e3:13.1f}", flush=True)


if __name__ == "__main__":
    main()
