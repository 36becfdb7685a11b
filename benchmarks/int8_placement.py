"""INT8 placement study: per model and runtime, which Conv/MatMul layers run as integer kernels and where the
time goes, FP32 next to INT8 (the runtime's own per-layer profile after its fusions: kernel_mix.py).

    python benchmarks/int8_placement.py                         # UniNeXt-T, ConvMLP-S, UniNet-B1 at 224
    python benchmarks/int8_placement.py --models uninet_b1 --targets ort --islands 10

Profiling adds overhead per node, so read the shares, not the absolute times (the p50 column is timed without
profiling).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from uninext_deploy import api
from uninext_deploy.kernel_mix import KINDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["uninext_t", "convmlp_s", "uninet_b1"])
    parser.add_argument("--targets", nargs="*", default=["ort", "openvino"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calib-size", type=int, default=32)
    parser.add_argument("--islands", type=int, default=5, help="float Conv/MatMul layers to name per INT8 artifact")
    args = parser.parse_args()
    timing = api.TimingOptions(threads=args.threads, warmup=5, iters=30)
    print(f"batch 1, {args.threads} threads; shares of profiled time\n")
    print("| model | runtime | precision | p50 ms | Conv/MatMul in integer kernels | "
          + " | ".join(KINDS) + " |\n" + "|---" * (5 + len(KINDS)) + "|")
    islands = []
    for name in args.models:
        for target in args.targets:
            for precision in ("fp32", "int8"):
                with tempfile.TemporaryDirectory() as tmp:
                    report = api.profile(name, target, precision=precision, timing=timing, per_layer=True,
                                         eager=False, out=Path(tmp), int8=api.Int8Options(calib_size=args.calib_size))
                mix = report.kernels
                shares = " | ".join(f"{100 * mix.share(kind):.0f} %" for kind in KINDS)
                print(f"| {name} | {target} | {precision} | {report.backend.p50_ms:.2f} | {mix.integer_matmuls} of "
                      f"{mix.integer_matmuls + mix.float_matmuls} | {shares} |", flush=True)
                if precision == "int8":
                    islands.append((name, target, mix.float_matmul_layers[:args.islands]))
    print("\nfloat Conv/MatMul layers left in the INT8 artifacts (slowest first):")
    for name, target, layers in islands:
        print(f"- {name} {target}: {', '.join(layers) or 'none'}")


if __name__ == "__main__":
    main()
