"""Latency of an artifact and of PyTorch eager, measured in the same run with the same thread count."""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .artifact import Artifact
from .device import runtimes
from .device.integrity import sha256
from .device.timing import Latency, measure, summarize
from .options import DEFAULT_TARGET, Int8Options, ModelOptions, TimingOptions, TrtOptions
from .backends import get_backend
from .console import progress
from .devices import Device, report_of, run_bundle
from .devices.base import fingerprint, tree_digest
from .errors import UserError
from .kernel_mix import KernelMix, kernel_mix
from .memory import footprint
from .parity import refuse_timing, runner_for
from .pipeline import build_model, export, model_of
from .results import store


@dataclass
class ProfileReport:
    model: str
    target: str
    precision: str
    batch: int
    threads: int
    runner: dict
    backend: Latency
    eager: Latency | None
    layers: list[dict]
    device: Latency | None = None  # accelerator-side time (CUDA events), where the runtime can measure it
    memory: dict | None = None  # peak RSS of a process running it with its runtime alone, and its size (memory.py)

    @property
    def kernels(self) -> KernelMix | None:
        """Where the time goes by kind of kernel (integer, float, quantize, layout), from the per-layer profile."""
        return kernel_mix(self.layers) if self.layers else None

    @property
    def speedup(self) -> float | None:
        return self.eager.p50_ms / self.backend.p50_ms if self.eager else None

    def as_dict(self) -> dict:
        return {"model": self.model, "target": self.target, "precision": self.precision, "batch": self.batch,
                "threads": self.threads, "runner": self.runner, "backend": self.backend.as_dict(),
                "eager": self.eager.as_dict() if self.eager else None, "speedup_vs_eager": self.speedup,
                "device": self.device.as_dict() if self.device else None, "memory": self.memory,
                "kernels": self.kernels.as_dict() if self.kernels else None, "layers": self.layers}


def profile(model: ModelOptions, target: str = DEFAULT_TARGET, *, precision: str = "fp32", batch: int = 1,
            timing: TimingOptions = TimingOptions(), per_layer: bool = False, eager: bool = True,
            out: str | Path | None = None, int8: Int8Options | None = None,
            trt: TrtOptions | None = None) -> ProfileReport:
    """Export ``model`` to ``target`` (kept at ``out``, else in a temporary folder) and time it."""
    refuse_timing(get_backend(target, **(trt or TrtOptions()).backend_options()))
    with (nullcontext(out) if out is not None else tempfile.TemporaryDirectory(prefix="uninext-profile-")) as root:
        artifact = export(model, target, precision=precision, batch=batch, out=Path(root) / "artifact",
                          int8=int8, trt=trt)
        return profile_of(artifact, timing=timing, per_layer=per_layer, eager=eager)


def profile_of(artifact: Artifact, *, timing: TimingOptions = TimingOptions(), per_layer: bool = False,
               eager: bool = True) -> ProfileReport:
    """Time an artifact (or bundle) as it is, next to the PyTorch model it was exported from."""
    threads = timing.threads or runtimes.usable_cpus()
    runner = runner_for(artifact, threads, timing=True)
    batch = artifact.input_shape[0]
    x = np.random.default_rng(0).standard_normal(artifact.input_shape, dtype=np.float32)
    # timed runs are not counted one by one: the count's own cost would be inside the measurement
    with progress.step(f"timing {runner.name}: {_how_long(timing)}"):
        backend_latency = measure(lambda: runner.run(x), batch=batch, warmup=timing.warmup,
                                  iters=None if timing.seconds else timing.runs, seconds=timing.seconds)
    device_times = runner.device_times_ms(backend_latency.runs)
    layers = runner.per_layer_profile(x) if per_layer else []
    eager_latency = None
    if eager:
        torch_model = build_model(model_of(artifact), batch)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            xt = torch.from_numpy(x)
            with progress.step(f"timing PyTorch eager: {_how_long(timing)}"), torch.inference_mode():
                eager_latency = measure(lambda: torch_model(xt), batch=batch, warmup=timing.warmup,
                                        iters=None if timing.seconds else timing.runs, seconds=timing.seconds)
        finally:
            torch.set_num_threads(previous)
    with progress.step("peak memory of a process running the artifact alone"):
        memory = footprint(artifact, threads)
    return ProfileReport(artifact.manifest["model"]["name"], artifact.manifest["target"], artifact.precision, batch,
                         threads, runner.info(), backend_latency, eager_latency, layers,
                         summarize(device_times, batch) if device_times else None, memory)


def _how_long(timing: TimingOptions) -> str:
    return (f"{timing.warmup} warm-up runs, then {timing.seconds} s" if timing.seconds else
            f"{timing.warmup} warm-up and {timing.runs} timed runs")


@dataclass
class DeviceProfile:
    """A bundle timed on a device by its own run.py --bench: load, first run and steady state apart, every timed
    run, peak memory, and the device's state before and after with its warnings (device/state.py)."""

    model: str
    target: str
    precision: str
    batch: int
    device: str
    machine: str
    runner: dict
    load_ms: float
    first_ms: float
    latency: Latency
    times_ms: list[float]
    peak_rss_mb: float
    state: dict
    warnings: list[str] = field(default_factory=list)
    record: dict | None = None  # how run.py got to run there (devices.base.run_bundle)
    cached: str | None = None  # from the results store: when it was measured (not timed this time)

    def as_dict(self) -> dict:
        return {"model": self.model, "target": self.target, "precision": self.precision, "batch": self.batch,
                "device": self.device, "machine": self.machine, "runner": self.runner, "load_ms": self.load_ms,
                "first_ms": self.first_ms, "latency": self.latency.as_dict(), "times_ms": self.times_ms,
                "peak_rss_mb": self.peak_rss_mb, "state": self.state, "warnings": self.warnings,
                "record": self.record, "cached": self.cached}

    @classmethod
    def from_dict(cls, data: dict) -> "DeviceProfile":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**{**fields, "latency": Latency(**data["latency"])})

    def columns(self) -> dict:
        """What the results store queries it by."""
        after = (self.state or {}).get("after") or {}
        return {"device": self.device, "machine": self.machine, "model": self.model, "target": self.target,
                "precision": self.precision, "batch": self.batch,
                "runtime": f"{self.runner.get('runtime')} {self.runner.get('version')}", "p50_ms": self.latency.p50_ms,
                "p90_ms": self.latency.p90_ms, "temperature_c": after.get("temperature_c")}


def profile_on(device: Device, bundle: Artifact, timing: TimingOptions = TimingOptions(),
               public_key: str | Path | None = None) -> DeviceProfile:
    """Time the bundle at ``bundle`` on ``device`` with its own ``run.py --bench`` (the same timing code as
    here: device/timing.py ships in it). The timing is kept in the results store, and the stored one is returned
    (``cached``) when this bundle was timed the same way (and checked with the same ``public_key``) on this device
    before, unless ``timing.fresh``."""
    if "bundle" not in bundle.manifest:
        raise UserError(f"{bundle.path} is an artifact, not a bundle; a device runs bundles: make one with "
                        "`uninext-deploy bundle`, or profile it here without --device")
    if timing.seconds is not None:
        raise UserError("--seconds is not for --device (run.py --bench counts runs); pass --iters")
    # the key checked there is part of how it ran: a run refused under another key is not this one
    key = store.Key(tree_digest(bundle.path), fingerprint(device),
                    {"iters": timing.runs, "warmup": timing.warmup, "threads": timing.threads,
                     "public_key": sha256(Path(public_key)) if public_key else None})
    found = None if timing.fresh else store.find(key)
    if found is not None:
        return replace(DeviceProfile.from_dict(found.report), cached=found.measured_at)
    args = ["--bench", "--json", "--iters", str(timing.runs), "--warmup", str(timing.warmup),
            *(["--threads", str(timing.threads)] if timing.threads else [])]
    ran = run_bundle(device, bundle.path, args, public_key)
    report = report_of(ran, "bench", "run.py --bench", device.where or " here")
    bench = report["bench"]
    timed = DeviceProfile(report["model"], bundle.manifest["target"], report["precision"], bench["batch"],
                          device.name, report["machine"], report["runtime"], bench["load_ms"], bench["first_ms"],
                          summarize(bench["times_ms"], bench["batch"]), bench["times_ms"], bench["peak_rss_mb"],
                          bench["state"], bench["warnings"], ran.record)
    store.record(key, timed.columns(), timed.as_dict())
    return timed
