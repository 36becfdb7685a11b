"""Latency measurement shared by every runner, PyTorch eager and the device's ``run.py --bench``.

numpy only: bundles ship this file verbatim as ``timing.py``. Warm-up runs first, then a fixed number
of timed runs or as many as fit in a time budget (the trtexec / benchmark_app conventions), timed with
``perf_counter`` around each call.
"""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@dataclass
class Latency:
    runs: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # samples per second at the measured mean latency

    def as_dict(self) -> dict:
        return asdict(self)


def measure(fn: Callable[[], object], *, batch: int, warmup: int = 10, iters: int | None = None,
            seconds: float | None = None) -> Latency:
    """Time ``fn`` after ``warmup`` calls: ``iters`` runs, or as many as fit in ``seconds`` (at least 5)."""
    return summarize(timed_runs(fn, warmup=warmup, iters=iters, seconds=seconds), batch)


def timed_runs(fn: Callable[[], object], *, warmup: int = 10, iters: int | None = None,
               seconds: float | None = None) -> list[float]:
    """Every timed run's milliseconds, as :func:`measure` times them."""
    for _ in range(warmup):
        fn()
    if iters is None and seconds is None:
        iters = 50
    times = []
    deadline = time.perf_counter() + seconds if seconds is not None else None
    while (iters is not None and len(times) < iters) or (
            deadline is not None and (time.perf_counter() < deadline or len(times) < 5)):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def summarize(times_ms: list[float], batch: int) -> Latency:
    """Statistics of per-run times in milliseconds, at ``batch`` samples per run."""
    ms = np.asarray(times_ms)
    return Latency(
        runs=len(ms), mean_ms=float(ms.mean()), std_ms=float(ms.std()), min_ms=float(ms.min()),
        p50_ms=float(np.percentile(ms, 50)), p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)), throughput=float(batch * 1000.0 / ms.mean()))


TURN_WARMUP = 2
TURN_PAUSE_S = 0.3  # > OpenMP's default 200 ms block time, ORT's and OpenVINO's spin periods


def race(contestants: dict, *, batch: int, warmup: int, iters: int, rounds: int = 5) -> dict:
    """Time every contestant ({key: fn}) in turns: ``iters`` runs each, spread over ``rounds`` rounds, each
    turn after a pause and TURN_WARMUP untimed runs, so that the machine's drift in speed (large on shared
    machines) hits them all alike. {key: Latency}."""
    times: dict = {key: [] for key in contestants}
    for run in contestants.values():
        for _ in range(warmup):
            run()
    for _ in range(rounds):
        for key, run in contestants.items():
            time.sleep(TURN_PAUSE_S)  # the previous runtime's threads spin-wait for a while after a run
            for _ in range(TURN_WARMUP):
                run()
            for _ in range(max(1, iters // rounds)):
                start = time.perf_counter()
                run()
                times[key].append((time.perf_counter() - start) * 1000.0)
    return {key: summarize(samples, batch) for key, samples in times.items()}


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM, which starts afresh at exec (getrusage's ru_maxrss keeps
    the peak of the process that forked us: 400 MB of the host tool's, measured, for a 45 MB runtime)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux
