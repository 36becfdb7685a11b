"""Every variant (or a family) x ORT FP32: export, parity and latency, as one table.

    python benchmarks/sweep.py                 # all registered variants
    python benchmarks/sweep.py --family uninet --iters 10

Columns: params, GMACs, ONNX nodes, export seconds, ORT p50, PyTorch eager p50 (same thread count),
and the max abs error against PyTorch on the shipped photos at batch 1.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from uninext_deploy import api
from uninext_deploy.backends import get_backend
from uninext_deploy.models import count_macs, create_model, list_models
from uninext_deploy.device.timing import measure
from uninext_deploy.parity import check_artifact
from uninext_deploy.pipeline import images_tensor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family")
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or list_models(args.family, official=True)
    print(f"{'variant':<18} {'size':>4} {'params M':>9} {'GMACs':>7} {'nodes':>6} {'export s':>9} "
          f"{'ORT p50':>8} {'eager p50':>10} {'max abs err':>12}")
    for name in names:
        model = create_model(name)
        _, _, h, w = model.input_shape
        with tempfile.TemporaryDirectory() as root:
            artifact = api.export(name, "ort", out=Path(root) / "a")
            x_images = images_tensor(model.spec.preprocessing(h, w), None)
            x_random = np.random.default_rng(0).standard_normal((1, 3, h, w), dtype=np.float32)
            run = check_artifact(artifact, model, x_images, x_random, threads=args.threads)
            runner = get_backend("ort").load(artifact, threads=args.threads)
            ort_ms = measure(lambda: runner.run(x_random), batch=1, warmup=3, iters=args.iters).p50_ms
        xt = torch.from_numpy(x_random)
        with torch.inference_mode():
            eager_ms = measure(lambda: model(xt), batch=1, warmup=3, iters=args.iters).p50_ms
        m = artifact.manifest
        print(f"{name:<18} {h:>4} {m['model']['params'] / 1e6:9.2f} {count_macs(name) / 1e9:7.3f} "
              f"{m['onnx']['nodes']:>6} {m['export_seconds']:9.1f} {ort_ms:8.1f} {eager_ms:10.1f} "
              f"{max(run.images.max_abs, run.random.max_abs):12.2e}{'' if run.passed else '  FAIL'}", flush=True)


if __name__ == "__main__":
    main()
