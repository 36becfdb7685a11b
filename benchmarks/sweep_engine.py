"""A sweep of several models' candidates built here one after another (``--workers 0``, the machine's threads)
against the same sweep on the local Dask cluster (one-thread workers), in one interleaved run (serial, cluster,
cluster, serial, ...): wall time of the builds and of the whole run, peak resident memory of the host process
and of each worker, and the engine's cost per candidate (a finished build's way back to the host).

    python benchmarks/sweep_engine.py                     # uninext_t, convmlp_s, uninet_b1: default candidates
    python benchmarks/sweep_engine.py --models test_convmlp,test_uninet --rounds 1

Each run is its own interpreter (its own peaks). Timing is the same in both modes (the race on this machine after
the builds); only where the builds run differs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class BuildClock:
    """A progress reporter that notes when the builds end (the race's phase starts)."""

    def __init__(self):
        self.start, self.builds_done = time.monotonic(), None

    def started(self, step) -> None:
        if self.builds_done is None and step.text.startswith("latency of every candidate"):
            self.builds_done = time.monotonic() - self.start

    def advanced(self, step) -> None:
        pass

    def finished(self, step, ok: bool) -> None:
        pass


def child(models: list[str], workers: int, targets: list[str] | None, precisions: list[str] | None) -> dict:
    from uninext_deploy import api
    from uninext_deploy.console import progress
    from uninext_deploy.device.timing import peak_rss_mb

    clock = BuildClock()
    with tempfile.TemporaryDirectory() as root, progress.reporting(clock):
        swept, _ = api.optimize(models=models, out=Path(root) / "sweep", make_bundle=False, targets=targets,
                                precisions=precisions, timing=api.TimingOptions(iters=20),
                                build=api.BuildOptions(workers=workers))
    seconds = time.monotonic() - clock.start
    built = [c for r in swept.results for c in r.candidates if c.build]
    peaks: dict[str, float] = {}
    for c in built:
        peaks[c.build["on"]] = max(peaks.get(c.build["on"], 0), c.build["peak_mb"])
    return {"seconds": round(seconds, 1), "build_seconds": round(clock.builds_done, 1),
            "host_peak_mb": round(peak_rss_mb()),
            "worker_peaks_mb": sorted(peaks.values()), "candidates": len(built),
            "fetch_s": [c.build.get("fetch_seconds", 0.0) for c in built],
            "work_s": round(sum(c.build["seconds"] for c in built), 1),
            "front": [f"{p.model} {p.candidate}" for p in swept.front]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="uninext_t,convmlp_s,uninet_b1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="pairs of runs, ABBA ordered")
    parser.add_argument("--targets", default=None, help="e.g. ort,openvino (default: optimize's)")
    parser.add_argument("--precisions", default=None, help="e.g. fp32,int8 (default: optimize's)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        models, workers, targets, precisions = args.child
        print(json.dumps(child(models.split(","), int(workers), targets.split(",") if targets else None,
                               precisions.split(",") if precisions else None)))
        return
    order = [m for i in range(args.rounds) for m in ((0, args.workers) if i % 2 == 0 else (args.workers, 0))]
    runs = []
    for workers in order:
        command = [sys.executable, __file__, "--child", args.models, str(workers), args.targets or "",
                   args.precisions or ""]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"the sweep with --workers {workers} failed: {done.stderr.strip().splitlines()[-1:]}")
        runs.append((workers, json.loads(done.stdout.strip().splitlines()[-1])))
        print(f"# --workers {workers}: {runs[-1][1]}", flush=True)
    print("| builds on | candidates | builds wall s | whole run s | build work s (sum) | host peak MB | "
          "worker peaks MB | engine s per candidate (median, max) |")
    print("|---|---|---|---|---|---|---|---|")
    for workers, r in runs:
        where = "this process (--workers 0)" if workers == 0 else f"local cluster, {workers} one-thread workers"
        fetch = (f"{statistics.median(r['fetch_s']):.3f}, {max(r['fetch_s']):.3f}" if workers and r["fetch_s"]
                 else "")
        print(f"| {where} | {r['candidates']} | {r['build_seconds']} | {r['seconds']} | {r['work_s']} | "
              f"{r['host_peak_mb']} | {', '.join(map(str, r['worker_peaks_mb'])) if workers else ''} | {fetch} |")


if __name__ == "__main__":
    main()
