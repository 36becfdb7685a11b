"""Feature-map sweep: every registered variant exported with all its feature stages, checked on ONNX Runtime.

    python benchmarks/features_sweep.py                       # every variant at its native size
    python benchmarks/features_sweep.py --max-side 224 --calib-size 8
    python benchmarks/features_sweep.py --models uninext_t convmlp_s --no-int8

Per variant: the outputs with their shapes, ORT FP32 max abs error of each output against PyTorch (photos and
one random input, batch 1), and the worst output's cosine of the QDQ INT8 graph (plain calibration, no float
fallback, on the photos). Prints a markdown table; heavy (minutes per large variant): not part of the tests.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from uninext_deploy import api
from uninext_deploy.artifact import Artifact
from uninext_deploy.models import get_spec, list_models


def side_for(name: str, max_side: int | None) -> int:
    """The native size, or the largest size up to ``max_side`` the family takes (multiples of 16 down)."""
    spec = get_spec(name)
    if max_side is None or spec.native_size <= max_side:
        return spec.native_size
    side = max_side - max_side % 16
    while spec.size_error(side, side):
        side -= 16
    return side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list_models(official=True))
    parser.add_argument("--max-side", type=int, default=None, help="cap the input side (default: native sizes)")
    parser.add_argument("--calib-size", type=int, default=8)
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    print("| variant | input | outputs (C x H x W) | ORT FP32 max abs per output | INT8 worst output: cosine | s |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        start = time.perf_counter()
        side = side_for(name, args.max_side)
        model = api.ModelOptions(name, side, features="all")
        with tempfile.TemporaryDirectory() as root:
            fp32 = api.parity(model, "ort", batches=(1,), inputs=api.Inputs(random=1), out=root)
            shapes = ["x".join(map(str, o["shape"][1:])) for o in Artifact.open(f"{root}/b1").manifest["outputs"]]
        each = [max(p, r, key=lambda m: m.max_abs) for p, r in
                zip(fp32.runs[0].images.outputs.values(), fp32.runs[0].random.outputs.values())]
        int8 = "-"
        if args.int8:
            with tempfile.TemporaryDirectory() as root:
                report = api.parity(model, "ort", precision="int8", batches=(1,), inputs=api.Inputs(random=1),
                                    out=root, int8=api.Int8Options(calib_size=args.calib_size))
            worst = report.runs[0].images
            int8 = f"{worst.output} {worst.cosine:.4f}"
        outputs = ", ".join(f"{m.output} {shape}" for m, shape in zip(each, shapes))
        errors = ", ".join(f"{m.max_abs:.1e}" for m in each)
        verdict = "" if fp32.passed else " (FAIL)"
        print(f"| {name} | {side} | {outputs} | {errors}{verdict} | {int8} | {time.perf_counter() - start:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
