"""Latency statistics shared by every runner, eager and run.py --bench (device/timing.py)."""

import pytest

from uninext_deploy.device.timing import measure, summarize


def test_latency_summary_percentiles():
    stats = summarize([1.0, 2.0, 3.0, 4.0, 10.0], batch=2)
    assert stats.runs == 5 and stats.min_ms == 1.0 and stats.p50_ms == 3.0 and stats.mean_ms == 4.0
    assert stats.p99_ms == pytest.approx(9.76) and stats.throughput == pytest.approx(500.0)
    calls = []
    assert measure(lambda: calls.append(1), batch=1, warmup=3, iters=7).runs == 7 and len(calls) == 10
