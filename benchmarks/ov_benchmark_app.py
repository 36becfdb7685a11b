"""Cross-check our profiler against OpenVINO's own benchmark_app on the same IR and settings.

    python benchmarks/ov_benchmark_app.py --models convmlp_s uninext_t --seconds 15

Both run one stream, one request, f32 inference precision and the same thread count, one after
the other on the same IR; the table gives our p50, benchmark_app's median and their ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from uninext_deploy import api
from uninext_deploy.backends import get_backend
from uninext_deploy.device.timing import measure


def benchmark_app(xml: Path, threads: int, seconds: int) -> float:
    """benchmark_app's median latency in ms."""
    command = [shutil.which("benchmark_app") or "benchmark_app", "-m", str(xml), "-d", "CPU", "-hint", "none",
               "-nstreams", "1", "-nireq", "1", "-api", "sync", "-nthreads", str(threads),
               "-infer_precision", "f32", "-t", str(seconds)]
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Median:\s+([\d.]+) ms", text).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["convmlp_s", "uninext_t", "uninet_b1"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    print(f"OpenVINO f32, 1 stream, sync API, {args.threads} threads, {args.seconds} s each")
    print(f"{'model':<12} {'ours p50 ms':>12} {'benchmark_app median ms':>24} {'ours / theirs':>14}")
    for name in args.models:
        with tempfile.TemporaryDirectory() as root:
            artifact = api.export(name, "openvino", out=Path(root) / "a")
            runner = get_backend("openvino").load(artifact, threads=args.threads)
            x = np.random.default_rng(0).standard_normal(artifact.input_shape, dtype=np.float32)
            ours = measure(lambda: runner.run(x), batch=1, warmup=10, seconds=args.seconds).p50_ms
            runner = None  # free its threads before benchmark_app runs
            theirs = benchmark_app(artifact.file("model"), args.threads, args.seconds)
        print(f"{name:<12} {ours:12.2f} {theirs:24.2f} {ours / theirs:14.3f}", flush=True)


if __name__ == "__main__":
    main()
