"""Latency statistics shared by every runner, eager and run.py --bench (device/timing.py)."""

import pytest

from uninext_deploy.device.timing import measure, summarize


def test_latency_summary_percentiles():
    stats = summarize([1.0, 2.0, 3.0, 4.0, 10.0], batch=2)
    assert stats.runs == 5 and stats.min_ms == 1.0 and stats.p50_ms == 3.0 and stats.mean_ms == 4.0
    assert stats.p99_ms == pytest.approx(9.76) and stats.throughput == pytest.approx(500.0)
    calls = []
    assert measure(lambda: calls.append(1), batch=1, warmup=3, iters=7).runs == 7 and len(calls) == 10


def test_race_times_contestants_in_turns(monkeypatch):
    import time

    from uninext_deploy.device import timing

    monkeypatch.setattr(timing, "TURN_PAUSE_S", 0.0)
    calls = []

    def contestant(key, seconds):
        def run():
            calls.append(key)
            time.sleep(seconds)
        return run

    latencies = timing.race({"fast": contestant("fast", 0.001), "slow": contestant("slow", 0.004)}, batch=2,
                            warmup=1, iters=6, rounds=3)
    assert latencies["fast"].runs == latencies["slow"].runs == 6
    assert latencies["slow"].p50_ms > latencies["fast"].p50_ms >= 1.0
    turns = [k for i, k in enumerate(calls) if i == 0 or calls[i - 1] != k]
    assert turns == ["fast", "slow"] * 4  # warm-up, then three rounds of alternating turns
