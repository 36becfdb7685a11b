"""The fastest artifact within an accuracy budget: explore backend x precision x calibration, measure
each candidate's parity against PyTorch and its latency in one run, pick the fastest that meets the
budget, and package it as a bundle.

The budget is met on the real photos (calibration's domain): ``min_cosine`` bounds the worst per-photo
cosine to PyTorch's logits; ``max_top1_drop`` bounds the percentage of photos whose top-1 class differs
from PyTorch's, an upper bound of the accuracy drop (with the 10 shipped photos one flip is 10 points:
pass ``images`` for a finer measure). An INT8 candidate that misses the budget is tried again with
per-block float fallback (most sensitive block first) where its backend quantizes the ONNX graph.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import api
from .artifact import atomic_folder
from .backends import canonical_target, get_backend
from .errors import ParityFailure, UserError
from .export.precision import CALIB_METHODS, Int8Options
from .models import count_macs, create_model, get_spec
from .parity import Metrics, failures
from .profile import Latency, summarize

DEFAULT_TARGETS = ("ort", "openvino", "trt")
RESULTS = "results.json"
TURN_WARMUP = 2
TURN_PAUSE_S = 0.3  # > OpenMP's default 200 ms block time, ORT's and OpenVINO's spin periods


@dataclass
class Candidate:
    target: str
    precision: str
    calib: str | None = None
    fallback: bool = False
    latency: Latency | None = None
    photos: Metrics | None = None
    random: Metrics | None = None
    failed: list[str] = field(default_factory=list)  # budget misses; empty and no error: it meets the budget
    error: str | None = None  # could not be built or run here
    kept_float: int = 0  # INT8: quantizable nodes left in float by the model's hints
    float_blocks: list[str] = field(default_factory=list)  # INT8 fallback: blocks returned to float, worst first
    gflops: float | None = None
    roofline_gflops: float | None = None
    runner: str = ""

    @property
    def name(self) -> str:
        extra = ", ".join(x for x in (self.calib, "fallback" if self.fallback else None) if x)
        return f"{self.target} {self.precision}" + (f" ({extra})" if extra else "")

    @property
    def passed(self) -> bool:
        return self.error is None and not self.failed and self.latency is not None

    @property
    def roofline_pct(self) -> float | None:
        return 100 * self.gflops / self.roofline_gflops if self.gflops and self.roofline_gflops else None

    def as_dict(self) -> dict:
        data = asdict(self)
        data.update(name=self.name, passed=self.passed, roofline_pct=self.roofline_pct)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Candidate":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key, kind in (("latency", Latency), ("photos", Metrics), ("random", Metrics)):
            fields[key] = kind(**fields[key]) if fields.get(key) else None
        return cls(**fields)


@dataclass
class OptimizeResult:
    model: str
    input_shape: list[int]
    platform: str
    threads: int
    budget: dict  # {"cosine": [bound, "min"]} or {"top1": [bound, "min"]}
    eager: Latency | None  # measured in turns with the candidates
    gmacs: float
    candidates: list[Candidate]
    winner: int | None = None
    layers: list[dict] = field(default_factory=list)  # per-layer time of the winner
    bundle: str | None = None
    machine: str = ""
    note: str = ""

    def as_dict(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data.update(eager=self.eager.as_dict(), candidates=[c.as_dict() for c in self.candidates])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "OptimizeResult":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields.update(eager=Latency(**data["eager"]), candidates=[Candidate.from_dict(c) for c in data["candidates"]])
        return cls(**fields)

    @classmethod
    def load(cls, path: str | Path) -> "OptimizeResult":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{path} is not a results.json written by `uninext-deploy optimize` or `report`") from None

    @property
    def best(self) -> Candidate | None:
        return self.candidates[self.winner] if self.winner is not None else None


def budget_tolerance(min_cosine: float | None, max_top1_drop: float | None) -> dict:
    if min_cosine is not None and max_top1_drop is not None:
        raise UserError("--min-cosine and --max-top1-drop exclude each other; pick one budget")
    if max_top1_drop is not None:
        if not 0 <= max_top1_drop <= 100:
            raise UserError(f"--max-top1-drop is a percentage in [0, 100], got {max_top1_drop}")
        return {"top1": (1 - max_top1_drop / 100, "min")}
    cosine = 0.99 if min_cosine is None else min_cosine
    if not 0 < cosine <= 1:
        raise UserError(f"--min-cosine must be in (0, 1], got {cosine}")
    return {"cosine": (cosine, "min")}


def plan(targets, precisions, calib_methods) -> list[Candidate]:
    """The candidates to try, in order; targets this machine cannot run are left out (TensorRT without a GPU)."""
    plans = []
    for target in dict.fromkeys(canonical_target(t) for t in targets):
        backend = get_backend(target)
        if backend.cannot_run():
            continue
        for precision in precisions:
            api.check_precision(precision)
            methods = [None]
            if precision == "int8" and not backend.applies_precision:
                methods = list(calib_methods)
                unknown = [m for m in methods if m not in CALIB_METHODS]
                if unknown:
                    raise UserError(f"unknown calibration method {unknown[0]!r}; choose from {', '.join(CALIB_METHODS)}")
            plans += [Candidate(target, precision, method) for method in methods]
    if not plans:
        raise UserError("no candidate can run here; pass --targets with ort or openvino")
    return plans


def optimize(model: str = api.DEFAULT_MODEL, *, platform: str = "host", min_cosine: float | None = None,
             max_top1_drop: float | None = None, targets=DEFAULT_TARGETS, precisions=("fp32", "fp16", "int8"),
             calib_methods=("percentile", "entropy"), batch: int = 1, input_size=None, threads: int | None = None,
             iters: int = 30, warmup: int = 5, images: str | Path | None = None, calib: str | Path | None = None,
             weights: str | None = None, seed: int = 0, out: str | Path | None = None, make_bundle: bool = True,
             cpu: str = "cortex-a76", arm_cache=None, progress=None) -> tuple[OptimizeResult, Path]:
    """Search, pick and package; write ``out``/results.json, report.md, report.html (+ the bundle).

    ``progress(done, total, step)`` follows the search. The output folder is written atomically.
    Returns the result and the output folder.
    """
    from .bundle import bundle_platform, default_out, package
    from .report import write_report
    from .roofline import machine_id, roofline

    budget = budget_tolerance(min_cosine, max_top1_drop)
    platform = bundle_platform(platform)
    threads = threads or os.cpu_count() or 1
    candidates = plan(targets, precisions, calib_methods)
    spec = get_spec(model)
    torch_model = create_model(spec.name, input_size=input_size, batch_size=batch, weights=weights, seed=seed)
    reference_model = torch_model if batch == 1 else create_model(spec.name, input_size=input_size, batch_size=1,
                                                                  weights=weights, seed=seed)
    shape = list(torch_model.input_shape)
    h, w = shape[2:]
    out = Path(out) if out is not None else Path("optimized") / f"{spec.name}-b{batch}-{h}x{w}-{platform.replace('/', '-')}"
    tell = progress or (lambda done, total, step: None)
    final_steps = 3 + make_bundle  # race, per-layer profile, (bundle), done
    tell(0, len(candidates) + final_steps, "PyTorch references on the photos")
    x_images = api.images_tensor(spec.preprocessing(h, w), images)
    x_random = np.random.default_rng(seed).standard_normal((2, 3, h, w), dtype=np.float32)
    references = api.torch_references(reference_model, x_images, x_random)
    result = OptimizeResult(spec.name, shape, platform, threads, {k: list(v) for k, v in budget.items()},
                            None, count_macs(spec.name, (h, w), batch) / 1e9, [], machine=machine_id())
    with atomic_folder(out, marker=RESULTS) as folder, tempfile.TemporaryDirectory(prefix="uninext-optimize-") as tmp:
        queue, evaluated, runners = list(candidates), {}, {}  # evaluated: index -> (artifact, ParityRun)
        while queue:
            candidate = queue.pop(0)
            index = len(result.candidates)
            tell(index, index + 1 + len(queue) + final_steps, f"{candidate.name}: export and parity")
            found = _evaluate(candidate, spec.name, shape, budget, Path(tmp) / f"c{index}", reference_model,
                              x_images, x_random, references, threads, calib, weights, seed)
            if found is not None:
                artifact, run, runner = found
                evaluated[index], runners[index] = (artifact, run), runner
            result.candidates.append(candidate)
            if (candidate.precision == "int8" and candidate.failed and not candidate.fallback
                    and candidate.error is None and not get_backend(candidate.target).applies_precision):
                queue.insert(0, Candidate(candidate.target, "int8", candidate.calib, fallback=True))
        done, steps = len(result.candidates), len(result.candidates) + final_steps
        tell(done, steps, "latency of every candidate and PyTorch eager, in turns")
        _race(result, runners, torch_model, shape, threads, warmup, iters, seed)
        for candidate in result.candidates:
            if candidate.latency is not None:
                candidate.roofline_gflops = roofline(get_backend(candidate.target).name, candidate.precision,
                                                     threads)["gflops"]
                candidate.gflops = 2 * result.gmacs / (candidate.latency.p50_ms / 1000)
        ranked = sorted((i for i, c in enumerate(result.candidates) if c.passed),
                        key=lambda i: result.candidates[i].latency.p50_ms)
        if not ranked:
            result.note = "no candidate met the budget; loosen it or add precisions/targets"
        tell(done + 1, steps, "per-layer profile of the winner")
        for index in ranked:
            result.winner = index
            winner, (artifact, run) = result.candidates[index], evaluated[index]
            result.layers = runners[index].per_layer_profile(
                np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))
            if not make_bundle:
                break
            tell(done + 2, steps, f"bundle of {winner.name}")
            try:
                made = package(artifact, run, platform=platform, out=folder / default_out(artifact, platform).name,
                               tolerance=budget, threads=threads, cpu=cpu, arm_cache=arm_cache)
            except (ParityFailure, UserError) as exc:  # its golden check (e.g. on the emulated ARM CPU) failed,
                # or the runtime cannot run it on that CPU: the next fastest candidate is tried
                winner.failed.append(f"bundle: {exc}")
                continue
            result.bundle = made.path.name
            break
        else:
            result.winner = None
        write_report(result, folder)
        tell(steps, steps, "done")
    return result, out


def _race(result: OptimizeResult, runners: dict, torch_model, shape, threads: int, warmup: int, iters: int,
          seed: int, rounds: int = 5) -> None:
    """Time every candidate and PyTorch eager in turns, ``iters`` runs each over ``rounds`` rounds, so that
    the machine's drift in speed (large on shared machines) hits them all alike; fill in their latencies."""
    import torch

    x = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    xt = torch.from_numpy(x)
    contestants = {i: (lambda r=runner: r.run(x)) for i, runner in runners.items()}
    contestants["eager"] = lambda: torch_model(xt)
    times: dict = {key: [] for key in contestants}
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
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
    finally:
        torch.set_num_threads(previous)
    result.eager = summarize(times.pop("eager"), shape[0])
    for index, samples in times.items():
        result.candidates[index].latency = summarize(samples, shape[0])


def _evaluate(candidate: Candidate, model: str, shape, budget, folder: Path, reference_model, x_images, x_random,
              references, threads, calib, weights, seed):
    """Export ``candidate`` and compare it with PyTorch; fill its fields; return (artifact, api.ParityRun,
    runner), or None when it cannot be built here."""
    int8 = None
    if candidate.precision == "int8":
        # fallback aims at the cosine budget; under a top-1 budget, at a near-float graph
        target_cosine = budget["cosine"][0] if "cosine" in budget else 0.999
        int8 = Int8Options(calib=calib, method=candidate.calib or "percentile", seed=seed,
                           min_cosine=target_cosine if candidate.fallback else None)
    try:
        artifact = api.export(model, candidate.target, precision=candidate.precision, batch=shape[0],
                              input_size=tuple(shape[2:]), out=folder, weights=weights, seed=seed, int8=int8)
    except UserError as exc:  # MissingDependency included
        candidate.error = str(exc)
        return None
    graph = artifact.manifest.get("precision_graph") or {}
    candidate.kept_float = len(graph.get("kept_float", []))
    candidate.float_blocks = list(graph.get("fallback", []))
    runner = api.runner_for(artifact, threads)
    run = api.check_artifact(artifact, reference_model, x_images, x_random, threads=threads, references=references,
                             runner=runner)
    candidate.photos, candidate.random, candidate.runner = run.images, run.random, run.runner
    candidate.failed = failures(run.images, budget)
    return artifact, run, runner[0]
