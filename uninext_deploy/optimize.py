"""The fastest artifact within an accuracy budget: explore backend x precision x calibration, measure
each candidate's parity against PyTorch and its latency in one run, pick the fastest that meets the
budget, and package it as a bundle.

The budget is met on the real photos (calibration's domain): ``min_cosine`` bounds the worst per-photo
cosine to PyTorch's logits; ``max_top1_drop`` bounds the percentage of photos whose top-1 class differs
from PyTorch's, an upper bound of the accuracy drop (with the 10 shipped photos one flip is 10 points:
pass ``images`` for a finer measure). An INT8 candidate that misses the budget is tried again with
per-block float fallback (most sensitive block first), on the QDQ graph and on OpenVINO's NNCF alike.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .artifact import atomic_folder
from .arm.platforms import bundle_platform
from .backends import BACKENDS, canonical_target, get_backend
from .console import progress
from .device import runtimes
from .device.timing import race
from .errors import ParityFailure, UserError
from .models import count_macs
from .options import (CALIB_METHODS, PRECISIONS, BuildOptions, Inputs, Int8Options, ModelOptions, PlatformOptions,
                      TimingOptions, TrtOptions)
from .parity import reference_inputs, runner_for
from .pipeline import build_model, check_precision
from .results import RESULTS, Candidate, OptimizeResult, budget_tolerance
from .sweep import engine, on_devices
from .sweep.build import Built, Job, unpack
from .sweep.journal import Journal
from .sweep.pareto import SWEEP, Sweep

DEFAULT_CALIB_METHODS = ("percentile", "entropy")
RANDOM_INPUTS = 2  # reported, not budgeted
PICKS = ("each-device", "slowest-device")  # over a fleet: a bundle per device's winner, or the one best where slowest


def plan(targets=BACKENDS, precisions=None, calib_methods=DEFAULT_CALIB_METHODS) -> list[Candidate]:
    """The candidates to try, in order. A backend this machine cannot run stays in the list, skipped with
    the reason: latency is never measured on a stand-in. ``precisions`` None: every precision, but those a
    backend says cannot win on this CPU are listed as skipped, with why (name them to try them anyway)."""
    chosen = precisions is not None
    precisions = PRECISIONS if precisions is None else precisions
    plans = []
    unknown = [m for m in calib_methods if m not in CALIB_METHODS]
    if unknown:
        raise UserError(f"unknown calibration method {unknown[0]!r}; choose from {', '.join(CALIB_METHODS)}")
    for target in dict.fromkeys(canonical_target(t) for t in targets):
        backend = get_backend(target)
        reason = backend.cannot_run()
        for precision in precisions:
            precision = check_precision(precision)
            methods = list(calib_methods) if precision == "int8" and not backend.applies_precision else [None]
            loses = None if chosen else backend.cannot_win(precision)
            skipped = f"not timed here: {reason}" if reason else f"not tried: {loses}" if loses else None
            plans += [Candidate(backend.name, precision, method, skipped=skipped) for method in methods]
    if all(c.skipped for c in plans):
        raise UserError("no candidate can run here; pass --targets with ort or openvino")
    return plans


def optimize(model: ModelOptions, **options) -> tuple[OptimizeResult, Path]:
    """Search, pick and package one model (:func:`sweep` of it alone); write ``out``/results.json, report.md,
    report.html (+ the bundle). Returns the result and the output folder."""
    swept, out = sweep([model], **options)
    return swept.results[0], out


def sweep(models: list[ModelOptions], *, min_cosine: float | None = None, max_top1_drop: float | None = None,
          targets=BACKENDS, precisions=None, calib_methods=DEFAULT_CALIB_METHODS, batch: int = 1,
          images: str | Path | None = None, out: str | Path | None = None, make_bundle: bool = True,
          int8: Int8Options = Int8Options(), trt: TrtOptions = TrtOptions(),
          timing: TimingOptions = TimingOptions(), platform: PlatformOptions = PlatformOptions(),
          labels: str | Path | None = None, device=None, fleet=None, pick: str = "each-device",
          build: BuildOptions = BuildOptions()) -> tuple[Sweep, Path]:
    """Every model's candidates under one budget: all built on the engine at once (``build``: sweep/engine.py, a
    local Dask cluster by default; ``build.resume`` reuses an interrupted run's builds), then timed here in one
    race (and with ``device``, a device and its probe's facts, on the device by each bundle's run.py --bench in
    turns: the fastest there wins); each model's winner packaged and reported in its own folder. One model: that
    folder is ``out``; several: ``out``/MODEL-.../ each, beside sweep.json, sweep.md and the Pareto plot across
    models (sweep/pareto.py). ``fleet`` (DeviceOptions naming several devices): every candidate timed on every
    device at once; each device's winner, and the one artifact best where it is slowest; ``pick``
    "each-device" bundles every device's winner for its platform, "slowest-device" that one artifact only.

    A feature model (``model.features``) is judged on its worst output: the budget must be a cosine.
    ``labels``: the class names the bundles carry (see bundle.read_labels). ``int8.min_cosine`` (the INT8
    fallback target, cosine to the float graph) defaults to the budget's cosine (0.999 under a top-1 budget).
    The output folder is written atomically.
    """
    from .bundle import read_labels
    from .report import write_report
    from .sweep.report import write_sweep

    budget = budget_tolerance(min_cosine, max_top1_drop)
    if any(m.features is not None for m in models) and "top1" in budget:
        raise UserError("--max-top1-drop needs class logits; a --features model is judged on its worst feature "
                        "map, so give --min-cosine instead")
    if timing.seconds is not None:
        raise UserError("optimize times every candidate in turns for --iters runs; drop --seconds")
    if pick not in PICKS:
        raise UserError(f"--pick {pick!r} is none of {', '.join(PICKS)}")
    twice = sorted({m.model for m in models if [n.model for n in models].count(m.model) > 1})
    if twice:
        raise UserError(f"--models names {', '.join(twice)} twice; name each model once")
    target_platform = bundle_platform(platform.platform)
    threads = timing.threads or runtimes.usable_cpus()
    planned = plan(targets, precisions, calib_methods)
    final_steps = 3 + make_bundle  # race, per-layer profile, (bundle), report
    progress.phase("PyTorch references on the photos", total=len(planned) * len(models) + final_steps)
    searches = [_Search.start(m, planned, budget, batch, images, threads, target_platform, read_labels(labels, m))
                for m in models]
    out = Path(out) if out is not None else Path("optimized") / (
        searches[0].folder_name if len(searches) == 1 else
        f"sweep-{'-'.join(m.model for m in models)}-b{batch}-{target_platform.replace('/', '-')}")
    journal = Journal(out.with_name(out.name + ".partial"), build.resume)
    if journal.told():
        progress.phase(journal.told())
    fallback = int8.min_cosine or (budget["cosine"][0] if "cosine" in budget else 0.999)
    with atomic_folder(out, marker=RESULTS if len(searches) == 1 else SWEEP) as folder, \
            tempfile.TemporaryDirectory(prefix="uninext-optimize-") as tmp:
        jobs = {id(s): [s.job(c, replace(int8, min_cosine=fallback), trt) for c in s.planned if not c.skipped]
                for s in searches}
        builds = engine.build_all([job for s in searches for job in jobs[id(s)]],
                                  {s.model.model: s.inputs for s in searches}, build, journal, _fallback_of)
        for i, s in enumerate(searches):
            s.assemble(builds, replace(int8, min_cosine=fallback), trt, Path(tmp) / f"m{i}")
        done = sum(len(s.result.candidates) for s in searches)
        steps = done + final_steps
        progress.phase("latency of every candidate and PyTorch eager, in turns", done=done, total=steps)
        _race(searches, threads, timing.warmup, timing.runs)
        for i, s in enumerate(searches):
            if device is not None:
                progress.phase(f"latency of every {s.model.model} candidate on {device[0].name}, in turns",
                               done=done, total=steps)
                on_devices.race_on_device(s.result, s.evaluated, device, budget, Path(tmp) / f"m{i}", timing, platform)
            if fleet is not None:
                progress.phase(f"latency of every {s.model.model} candidate on {fleet.devices}, each device in "
                               "turns", done=done, total=steps)
                on_devices.race_on_fleet(s.result, s.evaluated, fleet, budget, Path(tmp) / f"m{i}", timing)
                on_devices.fleet_winners(s.result)
                s.result.pick = pick
            progress.phase(f"per-layer profile of the {s.model.model} winner", done=done + 1, total=steps)
            into = folder if len(searches) == 1 else folder / s.folder_name
            into.mkdir(exist_ok=True)

            def tell(text: str) -> None:
                progress.phase(text, done=done + 2, total=steps)

            _pick_and_package(s.result, s.evaluated, budget, into if make_bundle and fleet is None else None,
                              threads, platform, s.labels, tell)
            if fleet is not None and make_bundle:
                on_devices.package_for_fleet(s.result, s.evaluated, budget, into, threads, s.labels, pick, tell)
            progress.phase("writing the report", done=steps - 1, total=steps)
            write_report(s.result, into)
        swept = Sweep([s.result for s in searches], [s.folder_name for s in searches] if len(searches) > 1 else ["."])
        if len(searches) > 1:
            write_sweep(swept, folder)
    journal.close()  # the output is written: an interrupted run's builds are of no more use
    return swept, out


def _fallback_of(job: Job, built: Built) -> Job | None:
    """An INT8 candidate that misses the budget is built again with per-block float fallback."""
    c = built.candidate
    if c.precision == "int8" and c.failed and not c.fallback and c.error is None:
        return replace(job, candidate=Candidate(c.target, "int8", c.calib, fallback=True))
    return None


@dataclass
class _Search:
    """One model's search under way: its PyTorch model (timed as eager) and references, its result so far, the
    candidates planned and, once built, {index: (artifact, ParityRun, runner)} of those that were."""

    model: ModelOptions
    torch_model: object
    inputs: tuple
    result: OptimizeResult
    planned: list[Candidate]
    labels: list[str] | None
    folder_name: str
    batch: int
    evaluated: dict = field(default_factory=dict)

    @classmethod
    def start(cls, model: ModelOptions, planned: list[Candidate], budget: dict, batch: int, images, threads: int,
              target_platform: str, labels) -> "_Search":
        from .roofline import machine_id

        torch_model = build_model(model, batch)
        reference_model = torch_model if batch == 1 else build_model(model)
        shape = list(torch_model.input_shape)
        h, w = shape[2:]
        name = torch_model.spec.name
        inputs = reference_inputs(reference_model, Inputs(images, RANDOM_INPUTS), model.seed)
        result = OptimizeResult(name, shape, target_platform, threads, {k: list(v) for k, v in budget.items()},
                                None, count_macs(name, (h, w), batch, model.features) / 1e9, [],
                                machine=machine_id())
        return cls(model, torch_model, inputs, result, [replace(c) for c in planned], labels,
                   f"{name}-b{batch}-{h}x{w}-{target_platform.replace('/', '-')}", batch)

    def job(self, candidate: Candidate, int8: Int8Options, trt: TrtOptions) -> Job:
        return Job(self.model, candidate, self.batch, {k: tuple(v) for k, v in self.result.budget.items()}, int8,
                   trt, self.result.threads)

    def assemble(self, builds: dict, int8: Int8Options, trt: TrtOptions, tmp: Path) -> None:
        """The candidates in plan order (each fallback after its own), their artifacts unpacked under ``tmp``
        and loaded for timing."""
        for candidate in self.planned:
            if candidate.skipped:
                self.result.candidates.append(candidate)
                continue
            job = self.job(candidate, int8, trt)
            while job is not None:
                built, index = builds[job.key], len(self.result.candidates)
                self.result.candidates.append(built.candidate)
                if built.files:
                    artifact = unpack(built, tmp / f"c{index}")
                    self.evaluated[index] = (artifact, built.run, runner_for(artifact, self.result.threads,
                                                                              timing=True))
                job = _fallback_of(job, built)


def _race(searches: list[_Search], threads: int, warmup: int, iters: int, rounds: int = 5) -> None:
    """Time every model's candidates and its PyTorch eager in one race, in turns (timing.race), so that the
    machine's drift hits all alike, across models too; fill in their latencies."""
    import torch

    contestants = {}
    for m, s in enumerate(searches):
        x = np.random.default_rng(0).standard_normal(s.result.input_shape, dtype=np.float32)
        xt = torch.from_numpy(x)
        contestants.update({(m, i): (lambda r=runner, x=x: r.run(x)) for i, (_, _, runner) in s.evaluated.items()})
        contestants[(m, "eager")] = lambda model=s.torch_model, xt=xt: model(xt)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            latencies = race(contestants, batch=searches[0].batch, warmup=warmup, iters=iters, rounds=rounds)
    finally:
        torch.set_num_threads(previous)
    for (m, index), latency in latencies.items():
        if index == "eager":
            searches[m].result.eager = latency
        else:
            searches[m].result.candidates[index].latency = latency


def _pick_and_package(result: OptimizeResult, evaluated: dict, budget: dict, folder: Path | None, threads: int,
                      platform: PlatformOptions, labels: list[str] | None, tell) -> None:
    """Rank the passing candidates by p50; the fastest whose bundle (in ``folder``, None: no bundle) passes its
    own golden checks wins, with its per-layer profile and share of the GEMM roofline."""
    from .bundle import default_out, package
    from .roofline import roofline

    for candidate in result.candidates:
        if candidate.latency is not None:
            candidate.gflops = 2 * result.gmacs / (candidate.latency.p50_ms / 1000)
            candidate.roofline_gflops = roofline(candidate.target, candidate.precision, threads,
                                                 at_least=candidate.gflops)["gflops"]
    ranked = sorted((i for i, c in enumerate(result.candidates) if c.passed),
                    key=lambda i: result.candidates[i].ranked_latency.p50_ms)
    if not ranked:
        result.note = "no candidate met the budget; loosen it or add precisions/targets"
    for index in ranked:
        winner, (artifact, run, runner) = result.candidates[index], evaluated[index]
        result.winner = index
        result.layers = runner.per_layer_profile(np.random.default_rng(0).standard_normal(result.input_shape,
                                                                                          dtype=np.float32))
        if folder is None:
            return
        tell(f"bundle of {winner.name}")
        try:
            made = package(artifact, run, platform=platform, tolerance=budget, threads=threads, labels=labels,
                           out=folder / default_out(artifact, result.platform).name)
        except (ParityFailure, UserError) as exc:  # its golden check (e.g. on the emulated ARM CPU) failed,
            # or the runtime cannot run it on that CPU: the next fastest candidate is tried
            winner.bundle_error = str(exc)
            continue
        result.bundle = made.path.name
        return
    result.winner = None
