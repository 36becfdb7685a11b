"""Candidates built on a real Dask scheduler and two worker processes started here on 127.0.0.1 (sweep/engine.py):
one worker killed while it builds, its candidate built again on the other and the sweep complete; an interrupted
sweep resumed without building again what it had finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from uninext_deploy import api
from uninext_deploy.console import progress

SWEEP = dict(targets=["ort"], precisions=["fp32", "int8"], calib_methods=("percentile", "entropy"),
             timing=api.TimingOptions(iters=5, warmup=1), make_bundle=False)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two one-thread workers without nannies (a killed worker stays dead), each its own
    process on 127.0.0.1; the scheduler retries nothing itself (allowed-failures 0), so the retry seen is ours."""
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0", "OMP_NUM_THREADS": "1"}
    address_file = tmp_path / "scheduler.json"
    started = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                 "--port", "0", "--no-dashboard", "--scheduler-file", str(address_file)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(600):
            if address_file.is_file() and address_file.read_text().strip():
                break
            time.sleep(0.1)
        address = json.loads(address_file.read_text())["address"]
        started += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                      "--no-nanny", "--no-dashboard", "--host", "127.0.0.1", "--memory-limit", "0"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        from distributed import Client

        with Client(address, timeout=60) as watcher:
            watcher.wait_for_workers(2, timeout=120)
            yield address, watcher, started[1:]
    finally:
        for process in started:
            process.kill()
            process.wait(timeout=30)


class Recorder:
    """The run's progress lines (a real progress.Reporter, as the CLI installs one); ``stop_after_builds``: a
    KeyboardInterrupt, as Ctrl-C would give, once that many builds were announced finished."""

    def __init__(self, stop_after_builds: int | None = None):
        self.lines, self.stop_after_builds = [], stop_after_builds

    def started(self, step) -> None:
        self.lines.append(step.text)
        if self.stop_after_builds == sum(": built on " in line for line in self.lines):
            self.stop_after_builds = None
            raise KeyboardInterrupt

    def advanced(self, step) -> None:
        pass

    def finished(self, step, ok: bool) -> None:
        pass


def test_a_worker_killed_mid_build_loses_only_its_candidate_which_is_built_again(cluster, tmp_path):
    address, watcher, workers = cluster
    pids = watcher.run(os.getpid)  # {worker address: pid}
    killed = {}

    def kill_the_first_busy_worker():
        for _ in range(1200):
            busy = [worker for worker, keys in watcher.processing().items() if any("build-" in k for k in keys)]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed["pid"] = pids[busy[0]]
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_first_busy_worker)
    recorder = Recorder()
    killer.start()
    with progress.reporting(recorder):
        swept, folder = api.optimize(models=["test_convmlp", "test_uninet"], out=tmp_path / "swept",
                                     build=api.BuildOptions(cluster=address),
                                     **{**SWEEP, "calib_methods": ("percentile",)})
    killer.join(timeout=10)
    assert "pid" in killed, "no build was seen running"
    assert [r.model for r in swept.results] == ["test_convmlp", "test_uninet"]
    for result, sub in zip(swept.results, swept.folders):
        built = [c for c in result.candidates if not c.skipped]
        assert [c.name for c in built] == ["ort fp32", "ort int8 (percentile)"]
        assert all(c.error is None and c.photos is not None and c.latency is not None for c in built)
        assert not any(c.build["on"].endswith(f":{killed['pid']}") for c in built)  # what it held was built again
        assert all(c.build["seconds"] > 0 and c.build["peak_mb"] > 0 and c.build["fetch_seconds"] < 5 for c in built)
        assert result.best is not None and (folder / sub / "results.json").is_file()
    assert any("its worker died; building it once more" in line for line in recorder.lines), recorder.lines
    kept = json.loads((folder / "sweep.json").read_text())
    assert kept["models"] == ["test_convmlp", "test_uninet"] and kept["front"]
    assert {p["model"] for p in kept["front"]} <= {"test_convmlp", "test_uninet"}
    dead = [p for p in workers if p.poll() is not None]
    assert len(dead) == 1 and dead[0].returncode == -signal.SIGKILL


def test_an_interrupted_sweep_resumes_without_building_again_what_it_finished(tmp_path):
    out = tmp_path / "swept"
    with pytest.raises(KeyboardInterrupt), progress.reporting(Recorder(stop_after_builds=2)):
        api.optimize("test_convmlp", out=out, build=api.BuildOptions(workers=0), **SWEEP)
    assert not out.exists() and len(list((tmp_path / "swept.partial").glob("*/built.pickle"))) == 2

    resumed = Recorder()
    with progress.reporting(resumed):
        result, _ = api.optimize("test_convmlp", out=out, build=api.BuildOptions(workers=0, resume=True), **SWEEP)
    assert any(line.startswith("resuming: 2 builds of an interrupted run") for line in resumed.lines), resumed.lines
    assert sum(": built on " in line for line in resumed.lines) == 1  # only the one it had not finished
    assert [c.name for c in result.candidates if not c.skipped] == ["ort fp32", "ort int8 (percentile)",
                                                                    "ort int8 (entropy)"]
    assert all(c.latency is not None for c in result.candidates if not c.skipped)
    assert (out / "results.json").is_file() and not (tmp_path / "swept.partial").exists()
