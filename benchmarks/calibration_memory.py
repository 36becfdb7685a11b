"""Peak resident memory and wall time of INT8 export, by model, runtime, input size and calibration size.

    python benchmarks/calibration_memory.py                       # the full table (takes about two hours)
    python benchmarks/calibration_memory.py --models uninext_t --targets ort --sizes 224 --calib-sizes 8 32

Each export runs alone in its own interpreter, so each peak (VmHWM: the whole export, PyTorch -> ONNX ->
calibration -> compile) is its own; the child then reports the INT8 artifact's cosine to PyTorch on the
shipped photos (measured after the peak is read, so the check's memory is not counted). Run nothing else
heavy beside it: the peaks are of this machine's memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("uninext_t", "uninext_s", "uninext_b", "uninext_b_cswin")


def child(model: str, target: str, size: int, calib_size: int, method: str | None) -> dict:
    """Export one INT8 artifact in this process and measure it: {"peak_mb", "seconds", "cosine"}."""
    from uninext_deploy import api
    from uninext_deploy.device.timing import peak_rss_mb
    from uninext_deploy.models import create_model
    from uninext_deploy.options import Int8Options
    from uninext_deploy.parity import check_artifact
    from uninext_deploy.pipeline import images_tensor

    options = Int8Options(calib_size=calib_size, **({"method": method} if method else {}))
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        artifact = api.export(model, target, precision="int8", input_size=size, out=Path(root) / "a", int8=options)
        seconds, peak = time.perf_counter() - start, peak_rss_mb()
        torch_model = create_model(model, input_size=size)
        photos = images_tensor(torch_model.spec.preprocessing(size, size), None)
        run = check_artifact(artifact, torch_model, photos, photos[:1])
    return {"peak_mb": round(peak), "seconds": round(seconds, 1), "cosine": round(run.images.cosine, 5)}


def measure(model: str, target: str, size: int, calib_size: int, method: str | None) -> dict:
    """``child`` in a fresh interpreter (its own peak); {"error": last line} when it fails."""
    command = [sys.executable, __file__, "--child", model, target, str(size), str(calib_size), method or ""]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        return {"error": (result.stderr.strip().splitlines() or ["no message"])[-1][:120]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--targets", nargs="*", default=["ort", "openvino"])
    parser.add_argument("--sizes", nargs="*", type=int, default=[224, 384])
    parser.add_argument("--calib-sizes", nargs="*", type=int, default=[8, 32, 128])
    parser.add_argument("--method", default=None, help="calibration method of the QDQ graph (default: the export's)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, target, size, calib_size, method = args.child
        print(json.dumps(child(model, target, int(size), int(calib_size), method or None)))
        return
    print("| model | runtime | input | calibration samples | peak resident MB | wall s | cosine to PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        for target in args.targets:
            for size in args.sizes:
                for calib_size in args.calib_sizes:
                    row = measure(model, target, size, calib_size, args.method)
                    cells = ([row["peak_mb"], row["seconds"], f"{row['cosine']:.5f}"] if "error" not in row
                             else [row["error"], "", ""])
                    print(f"| {model} | {target} | {size} | {calib_size} | " + " | ".join(map(str, cells)) + " |",
                          flush=True)


if __name__ == "__main__":
    main()
