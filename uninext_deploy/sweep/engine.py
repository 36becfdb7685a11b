"""Candidates built on Dask distributed: a local cluster of one-thread worker processes by default, or the
scheduler the user runs (``--cluster tcp://HOST:8786``; its workers need only this package installed), or
this process one build after another (``--workers 0`` or 1, or one usable CPU). Builds only: nothing is timed on
a worker.

A worker that dies mid-build loses only its job, which is submitted once more and then reported as failed (our
local cluster's scheduler is told not to retry on its own, so "once" is ours; a user's scheduler may retry first,
by its ``distributed.scheduler.allowed-failures``). Every finished build goes into the journal at once."""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import CancelledError
from typing import Callable, Iterator

from ..artifact import DiskFull
from ..console import progress
from ..errors import UserError
from ..options import BuildOptions
from .build import Built, Job, build
from .journal import Journal

PER_WORKER_MB = 4096  # a worker's export peaks under 4 GB at default settings (UniNeXt-B cross-shaped: 3783 MB)
CONNECT_SECONDS = 30  # to reach a --cluster scheduler


def local_workers(options: BuildOptions) -> int:
    """How many one-thread workers the local cluster has: --workers, else one per usable CPU, as many as this
    machine's available memory holds at PER_WORKER_MB each (at least one). 0 and 1 both mean this process: a
    cluster of one worker would only add its start (about 10 s here: the worker imports torch and the runtimes
    again, against 8 s for all three builds of test_convmlp, measured with the cluster and without)."""
    from ..device import runtimes

    if options.workers is not None:
        return options.workers
    try:
        import psutil  # distributed's own dependency

        by_memory = psutil.virtual_memory().available // (PER_WORKER_MB * 2**20)
    except ImportError:
        by_memory = runtimes.usable_cpus()
    return max(1, min(runtimes.usable_cpus(), by_memory))


@contextlib.contextmanager
def client(options: BuildOptions) -> Iterator[object]:
    """A Dask client of the cluster ``options`` names (a local one is started and stopped here)."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError("building on a cluster needs Dask: pip install 'distributed>=2024.8', or pass --workers 0 "
                        "to build here one after another") from None
    if options.cluster is not None:
        try:
            with Client(options.cluster, timeout=CONNECT_SECONDS) as connected:
                yield connected
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler {options.cluster}: {exc}; start one with "
                            "`dask scheduler` and workers with `dask worker ADDRESS`") from None
        return
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=local_workers(options), threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None, silence_logs=logging.CRITICAL,
                         memory_limit=0) as cluster, Client(cluster) as connected:
        # memory_limit 0: no worker is paused or restarted for its memory (an export peaks and then lets go)
        yield connected


def build_all(jobs: list[Job], inputs: dict[str, object], options: BuildOptions, journal: Journal,
              follow_up: Callable[[Job, Built], Job | None]) -> dict[str, Built]:
    """Every job built, each {job key: Built}; ``inputs``: {model name: its (x_images, x_random, references)};
    ``follow_up(job, built)``: a job to build next because of this one (an INT8 miss's fallback), or None.
    Finished builds in ``journal`` (a resumed sweep) are read back instead of built."""
    done: dict[str, Built] = {}
    pending, queue = [], list(jobs)
    while queue:  # what an earlier run finished (and what that led to) is read back; the rest is built
        job = queue.pop(0)
        built = journal.load(job)
        if built is None:
            pending.append(job)
            continue
        done[job.key] = built
        queue[:0] = [f for f in [follow_up(job, built)] if f is not None]
    if not pending:
        return done
    total = [len(done) + len(pending)]  # grows by each follow-up

    def finished(job: Job, built: Built) -> Job | None:
        journal.save(job, built)
        done[job.key] = built
        state = built.candidate.error or ("meets the budget" if not built.candidate.failed else "misses the budget")
        progress.phase(f"{job.model.model} {built.candidate.name}: built on {built.worker} in {built.seconds:.0f} s, "
                       f"{state}", done=len(done), total=total[0])
        follow = follow_up(job, built)
        total[0] += follow is not None
        return follow

    if options.cluster is None and local_workers(options) <= 1:  # a cluster of one worker adds only its start
        while pending:
            job = pending.pop(0)
            progress.phase(f"{job.model.model} {job.candidate.name}: export and parity", done=len(done),
                           total=total[0])
            try:
                built = build(job, inputs[job.model.model])
            except DiskFull:
                raise
            except UserError as exc:  # as a worker's: this candidate's end, not the sweep's
                built = Built.failed(job, str(exc), "this process")
            follow = finished(job, built)
            if follow is not None:
                pending.insert(0, follow)
        return done
    with client(options) as connected:
        _on_cluster(connected, pending, inputs, finished, len(done))
    return done


def _on_cluster(connected, pending: list[Job], inputs: dict, finished, resumed: int) -> None:
    """The jobs submitted at once (the scheduler hands them to idle workers), taken back as they finish."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    scattered = {name: connected.scatter(value, broadcast=True) for name, value in inputs.items()}
    attempts: dict[str, int] = {}
    jobs = {}

    def submit(job: Job):
        attempts[job.key] = attempts.get(job.key, 0) + 1
        future = connected.submit(build, job, scattered[job.model.model], pure=False,
                                  key=f"build-{job.key}-{attempts[job.key]}")
        jobs[future.key] = job
        return future

    running = as_completed([submit(job) for job in pending])
    progress.phase(f"{len(pending)} builds on {len(connected.scheduler_info()['workers'])} Dask workers",
                   done=resumed, total=resumed + len(pending))
    for future in running:
        job = jobs.pop(future.key)
        start = time.monotonic()
        try:
            built = future.result()  # the artifact's bytes come over here
        except KilledWorker as exc:
            if attempts[job.key] < 2:
                progress.phase(f"{job.model.model} {job.candidate.name}: its worker died; building it once more")
                running.add(submit(job))
                continue
            built = Built.failed(job, f"its worker died twice while building it ({exc})")
        except DiskFull:
            raise  # this machine's or a worker's disk: the sweep stops, in one line
        except UserError as exc:
            built = Built.failed(job, str(exc))
        except (CancelledError, OSError) as exc:  # the scheduler went away (CommClosedError is an OSError)
            raise UserError(f"lost the Dask cluster while building {job.candidate.name} ({type(exc).__name__}: "
                            f"{exc}); the builds that finished are kept: run again with --resume") from None
        built.fetched = round(time.monotonic() - start, 3)
        if built.candidate.build is not None:
            built.candidate.build["fetch_seconds"] = built.fetched
        follow = finished(job, built)
        if follow is not None:
            running.add(submit(follow))
