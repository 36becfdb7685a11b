"""ARM sweep: every CPU backend x precision on an emulated aarch64 CPU, against PyTorch and against x86.

    python benchmarks/arm_sweep.py                          # ConvMLP-S at 96 px on cortex-a76
    python benchmarks/arm_sweep.py --models uninext_t --size 224 --cpu neoverse-n1

Emulation is ~250x slower than native: keep models small (the default run takes a few minutes).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from uninext_deploy import api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["convmlp_s"])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--cpu", default="cortex-a76")
    parser.add_argument("--targets", nargs="*", default=["ort", "openvino"])
    args = parser.parse_args()
    print(f"emulated {args.cpu}, input {args.size}x{args.size}, batch 1, shipped photos + 1 random input")
    print(f"{'model':<10} {'runner':<15} {'arm cos':>9} {'x86 cos':>9} {'arm-x86 max':>12} {'rel':>8} "
          f"{'cos':>9} {'top1':>5} {'decisive':>8} {'seconds':>8}  verdict")
    for name in args.models:
        for target in args.targets:
            for precision in ("fp32", "fp16", "int8"):
                start = time.perf_counter()
                with tempfile.TemporaryDirectory() as root:
                    report = api.parity(name, target, precision=precision, batches=(1,),
                                        input_size=args.size, inputs=api.Inputs(random=1), out=root,
                                        platform=api.PlatformOptions("linux/arm64", args.cpu))
                run = report.runs[0]
                cross = run.arm["vs_host"]
                print(f"{name:<10} {target + ' ' + precision:<15} {run.arm['images'].cosine:9.6f} "
                      f"{run.images.cosine:9.6f} {cross.max_abs:12.2e} {cross.rel_max_abs:8.1e} {cross.cosine:9.6f} "
                      f"{cross.top1:5.2f} {cross.top1_decisive:8.2f} {time.perf_counter() - start:8.1f}  "
                      f"{'pass' if run.passed else 'FAIL: ' + '; '.join(run.failed)}", flush=True)


if __name__ == "__main__":
    main()
