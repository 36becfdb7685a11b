"""The bundle's C++ runner next to its run.py, on the same bundle: build time, binary size, and p50 latency of each
runner's --bench, measured in turns (one process per turn, C++ and Python alternating, so the machine's drift hits
both alike; ratios hold, absolute times move with the machine's load).

    python benchmarks/cpp_runner.py                                 # ConvMLP-S at 224, ORT and OpenVINO, FP32 and INT8
    python benchmarks/cpp_runner.py --models uninext_t --targets ort --precisions fp32 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from uninext_deploy import api, cpp_runner


def bench(command: list[str]) -> dict:
    result = subprocess.run([*command, "--bench", "--json"], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["bench"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["convmlp_s"])
    parser.add_argument("--targets", nargs="*", default=["ort", "openvino"])
    parser.add_argument("--precisions", nargs="*", default=["fp32", "int8"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=40, help="timed runs per turn")
    parser.add_argument("--rounds", type=int, default=5, help="turns per runner")
    args = parser.parse_args()
    common = ["--threads", str(args.threads), "--iters", str(args.iters), "--warmup", "5"]
    print(f"batch 1, {args.threads} threads, {args.rounds} turns of {args.iters} runs per runner, alternating; "
          "p50 = median of the turns' p50\n")
    print("| model | runtime | precision | C++ build s | binary MB | C++ p50 ms | run.py p50 ms | run.py / C++ | "
          "C++ peak MB | run.py peak MB |\n" + "|---" * 10 + "|")
    for name in args.models:
        for target in args.targets:
            for precision in args.precisions:
                with tempfile.TemporaryDirectory() as tmp:
                    made = api.bundle(name, target, precision=precision, cpp=True, out=Path(tmp) / "b",
                                      threads=args.threads)
                    built = made.manifest["bundle"]["cpp"]["built"]["linux/x86_64"]
                    binary = cpp_runner.build(made.path / "cpp", "linux/x86_64",
                                              cpp_runner.runtime_root(made.manifest["backend"], "linux/x86_64"),
                                              Path(tmp) / "build", cpp_runner.Toolchain())
                    runners = {"cpp": [str(binary), "--bundle", str(made.path), *common],
                               "py": [sys.executable, str(made.path / "run.py"), *common]}
                    turns: dict = {key: [] for key in runners}
                    for _ in range(args.rounds):
                        for key, command in runners.items():
                            turns[key].append(bench(command))
                p50 = {key: statistics.median(t["p50_ms"] for t in runs) for key, runs in turns.items()}
                peak = {key: max(t["peak_rss_mb"] for t in runs) for key, runs in turns.items()}
                print(f"| {name} | {target} | {precision} | {built['seconds']:.1f} | {built['binary_bytes'] / 1e6:.2f} | "
                      f"{p50['cpp']:.2f} | {p50['py']:.2f} | {p50['py'] / p50['cpp']:.3f} | {peak['cpp']:.0f} | "
                      f"{peak['py']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
