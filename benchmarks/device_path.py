"""What the device path costs: `verify --device` the first time (upload, venv from requirements.txt) and again
(both reused), and the p50 that `profile --device` reports against `run.py --bench` run directly on the same
machine, in interleaved rounds (the device path must add under 2 % to the time it reports).

    python benchmarks/device_path.py                  # ConvMLP-S at 224, 5 rounds of 200 runs
    python benchmarks/device_path.py --model uninext_t --rounds 3 --iters 100

The device is an asyncssh server on 127.0.0.1 started here (tests/devices/ssh_server.py, keys made here, an
empty device home), whose commands run on this machine: the same CPU times both paths.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "devices"))

from ssh_server import start_board  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="convmlp_s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args()

    from uninext_deploy import api

    with tempfile.TemporaryDirectory(prefix="uninext-device-bench-") as root:
        bundle = api.bundle(args.model, "ort", out=Path(root) / "bundle")
        board = start_board(Path(root) / "board")
        os.environ["HOME"] = str(board.client_home)
        os.environ.pop("SSH_AUTH_SOCK", None)
        board.trust()
        try:
            print("| verify --device | wall s | uploaded | runtime created |\n|---|---|---|---|")
            for label in ("first", "again"):
                start = time.perf_counter()
                report = api.verify(bundle.path, device="board")
                print(f"| {label} | {time.perf_counter() - start:.2f} | {report.device['uploaded']} | "
                      f"{report.device['runtime_created']} |")
            timing = api.TimingOptions(iters=args.iters, warmup=10, fresh=True)  # each round timed, not the store's
            # directly: the same run.py with the device's own venv (the runtime its requirements.txt resolved
            # to there, which may be newer than this environment's pinned one), so only the path differs
            direct = [report.device["python"], str(bundle.path / "run.py"), "--bench", "--json", "--iters",
                      str(args.iters)]
            rows, runtimes = [], set()
            for _ in range(args.rounds):  # interleaved: the machine's drift hits both paths alike
                profiled = api.profile(artifact=bundle.path, device="board", timing=timing)
                here = json.loads(subprocess.run(direct, capture_output=True, text=True, check=True).stdout)
                rows.append((profiled.latency.p50_ms, here["bench"]["p50_ms"]))
                runtimes |= {f"device venv: {profiled.runner['runtime']} {profiled.runner['version']}",
                             f"this environment: {here['runtime']['runtime']} {here['runtime']['version']}"}
            print("\n| round | p50 via --device ms | p50 run.py --bench ms | ratio |\n|---|---|---|---|")
            for i, (through, here) in enumerate(rows, 1):
                print(f"| {i} | {through:.3f} | {here:.3f} | {through / here:.4f} |")
            ratio = statistics.median(t / h for t, h in rows)
            print(f"\nmedian ratio {ratio:.4f} ({100 * (ratio - 1):+.2f} %), {args.rounds} rounds of {args.iters} runs; "
                  + "; ".join(sorted(runtimes)))
        finally:
            board.server.stop()


if __name__ == "__main__":
    main()
