"""Parity: an artifact against PyTorch on the same inputs, at each batch size, on this CPU and on devices (the
emulated aarch64 CPU, a board over SSH: checks the caller passes in); a failure names where the graph first
diverges.

Runs and verdicts are kept apart, as in Polygraphy: runners produce outputs, ``device/compare.py`` (the
file bundles ship) turns them into metrics and structured misses.
"""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .artifact import Artifact
from .backends import Runner, get_backend
from .console import progress
from .device import runtimes
from .device.compare import GATED_INPUTS, TOLERANCES, Metrics, Miss, compare, failures, run_batched
from .errors import UserError
from .options import DEFAULT_TARGET, Inputs, Int8Options, ModelOptions, TrtOptions, check_batch
from .pipeline import build_model, check_precision, export, images_tensor, model_of, torch_runner


INT8_TRIES = ("--int8-min-cosine 0.995 (the most sensitive blocks back in float), another --calib-method (entropy, "
              "minmax; ONNX Runtime graphs), or more --calib images of the device's scenes")
INT8_REMEDY = f"to try: {INT8_TRIES}"


def int8_remedy(manifest: dict) -> str:
    """What to try when an INT8 artifact fails parity here: first 7-bit weights, if they are 8-bit and this
    CPU's INT8 kernels saturate on them (the device runner says the same)."""
    if manifest["precision_graph"].get("weight_bits", 8) == 8 and runtimes.int8_dot_saturates():
        return f"to try: --int8-weight-bits 7 ({runtimes.SATURATION}), {INT8_TRIES}"
    return INT8_REMEDY


@dataclass
class ParityRun:
    """One artifact against PyTorch: metrics per input set, what missed the tolerance, and where it diverged."""

    batch: int
    artifact: str
    runner: str
    images: Metrics
    random: Metrics
    failed: list[Miss]
    divergence: str | None = None
    arm: dict | None = None  # the same artifact on the emulated aarch64 CPU: runner, metrics, vs this machine
    device: dict | None = None  # the same artifact on a device (--device): runner, metrics, vs this machine
    runtime: dict = field(default_factory=dict)  # what ran it: runtime, version, threads, inference precision

    @property
    def passed(self) -> bool:
        return not self.failed

    def misses(self, inputs: str) -> list[Miss]:
        return [miss for miss in self.failed if miss.inputs == inputs]


@dataclass
class ParityReport:
    model: str
    target: str
    precision: str
    tolerance: dict
    runs: list[ParityRun] = field(default_factory=list)
    remedy: str = INT8_REMEDY  # what to try when INT8 fails (int8_remedy of the artifact)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.runs)

    def summary(self) -> str:
        """Why it failed, in one line, with what to try for INT8."""
        why = "; ".join(f"batch {r.batch}: {', '.join(map(str, r.failed))}" for r in self.runs if r.failed)
        return f"{why}; {self.remedy}" if why and self.precision == "int8" else why

    def as_dict(self) -> dict:
        return {"model": self.model, "target": self.target, "precision": self.precision,
                "passed": self.passed, "tolerance": {k: {"bound": b, "kind": t} for k, (b, t) in
                                                     self.tolerance.items()},
                "runs": [{"batch": r.batch, "artifact": r.artifact, "runner": r.runner, "runtime": r.runtime,
                          "passed": r.passed,
                          "failed": [m.as_dict() for m in r.failed],
                          "divergence": r.divergence, "images": r.images.as_dict(), "random": r.random.as_dict(),
                          **{where: None if found is None else {k: v if isinstance(v, str) else v.as_dict()
                                                                for k, v in found.items()}
                             for where, found in (("arm", r.arm), ("device", r.device))}}
                         for r in self.runs]}


def runner_for(artifact: Artifact, threads: int | None = None, timing: bool = False) -> Runner:
    """The runner of ``artifact``'s backend. Where this machine cannot run that backend (TensorRT without a
    GPU), accuracy is checked on its stand-in with the graph the backend was given, said so in the runner's
    name; latency is never measured on a stand-in (``timing``: one UserError saying why)."""
    backend = get_backend(artifact.backend)
    reason = backend.cannot_run()
    if reason is None:
        return backend.load(artifact, threads=threads)
    if timing or backend.stand_in is None:
        refuse_timing(backend)
    stand_in = get_backend(backend.stand_in)
    return stand_in.open(artifact.onnx_file(), artifact.precision, threads,
                         name=f"{stand_in.runtime.package} on the {backend.name} input graph ({reason}: "
                              "engine parity runs where it can)")


def refuse_timing(backend) -> None:
    """One UserError when ``backend`` cannot run here, so its latency cannot be measured: said before any work."""
    reason = backend.cannot_run()
    if reason:
        raise UserError(f"{backend.name} artifacts cannot be timed here: {reason}; check their accuracy with "
                        f"`parity` (it runs the graph on {backend.stand_in}), time them where {backend.name} runs")


def torch_references(torch_model: torch.nn.Module, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
    """PyTorch's outputs on each input set, one sample at a time."""
    samples = sum(len(x) for x in inputs)
    with progress.step(f"PyTorch outputs on {samples} inputs", total=samples) as running:
        return tuple(run_batched(running.counts(torch_runner(torch_model)), x, 1) for x in inputs)


def check_artifact(artifact: Artifact, torch_model: torch.nn.Module, x_images: np.ndarray,
                   x_random: np.ndarray, *, threads: int | None = None,
                   references: tuple[np.ndarray, np.ndarray] | None = None,
                   runner: Runner | None = None) -> ParityRun:
    """Compare ``artifact`` with ``torch_model`` on both input sets; on failure, locate the divergence.

    ``references``: the model's outputs on (x_images, x_random), when the caller already has them;
    ``runner``: the artifact's runner, when the caller keeps it loaded.
    """
    from .divergence import locate_divergence

    tolerance = TOLERANCES[artifact.precision]
    batch = artifact.input_shape[0]
    runner = runner or runner_for(artifact, threads)
    references = references or torch_references(torch_model, x_images, x_random)
    batches = -(-len(x_images) // batch) + -(-len(x_random) // batch)
    with progress.step(f"running {runner.name} on {len(x_images)} photos and {len(x_random)} random inputs",
                       total=batches) as running:
        metrics = {kind: compare(ref, run_batched(running.counts(runner.run), x, batch))
                   for kind, x, ref in (("images", x_images, references[0]), ("random", x_random, references[1]))}
    failed = [miss for kind, m in metrics.items() if kind in GATED_INPUTS[artifact.precision]
              for miss in failures(m, tolerance, kind)]
    divergence = None
    if failed:
        probe = x_images[:batch] if len(x_images) >= batch else x_random[:batch]
        with progress.step("locating the first module whose output misses the tolerance"):
            found = locate_divergence(torch_model, artifact.onnx_file(), probe, tolerance)
        divergence = str(found) if found else "no single module output misses the tolerance"
    return ParityRun(batch, str(artifact.path), runner.name, metrics["images"], metrics["random"], failed,
                     divergence, runtime=runner.info())


def parity(model: ModelOptions, target: str = DEFAULT_TARGET, *, precision: str = "fp32", batches=(1, 2),
           inputs: Inputs = Inputs(), out: str | Path | None = None, threads: int | None = None,
           int8: Int8Options | None = None, trt: TrtOptions | None = None, on_devices=()) -> ParityReport:
    """Export ``model`` at each batch size and compare each artifact with PyTorch on the same inputs;
    ``on_devices``: checks that also run them on a device each (``bundle.device_parity``) and compare there."""
    from .backends import canonical_target

    target = canonical_target(target)
    precision = check_precision(precision)
    if not batches:
        raise UserError("--batches needs at least one batch size")
    for batch in batches:
        check_batch(batch, "--batches")
    torch_model = build_model(model)
    x_images, x_random, references = reference_inputs(torch_model, inputs, model.seed)
    report = ParityReport(torch_model.spec.name, target, precision, TOLERANCES[precision])
    artifacts: list[Artifact] = []
    with (nullcontext(out) if out is not None else tempfile.TemporaryDirectory(prefix="uninext-parity-")) as root:
        for batch in batches:
            with progress.step(f"exporting {torch_model.spec.name} to {target} {precision} at batch {batch}, "
                               "then comparing"):
                artifact = export(model, target, precision=precision, batch=batch, out=Path(root) / f"b{batch}",
                                  int8=int8, trt=trt)
                report.runs.append(check_artifact(artifact, torch_model, x_images, x_random, threads=threads,
                                                  references=references))
            report.remedy = int8_remedy(artifact.manifest)
            artifacts.append(artifact)
        for check in on_devices:
            check(report, artifacts, x_images, x_random, references)
    return report


def parity_of(artifact: Artifact, *, inputs: Inputs = Inputs(), threads: int | None = None,
              on_devices=()) -> ParityReport:
    """Compare an artifact (or bundle) that already exists with the PyTorch model it was exported from."""
    model = model_of(artifact)
    torch_model = build_model(model)
    x_images, x_random, references = reference_inputs(torch_model, inputs, model.seed)
    report = ParityReport(torch_model.spec.name, artifact.manifest["target"], artifact.precision,
                          TOLERANCES[artifact.precision], remedy=int8_remedy(artifact.manifest))
    report.runs.append(check_artifact(artifact, torch_model, x_images, x_random, threads=threads,
                                      references=references))
    for check in on_devices:
        check(report, [artifact], x_images, x_random, references)
    return report


def reference_inputs(torch_model, inputs: Inputs, seed: int):
    _, _, h, w = torch_model.input_shape
    x_images = images_tensor(torch_model.spec.preprocessing(h, w), inputs.images)
    x_random = np.random.default_rng(seed).standard_normal((inputs.random, 3, h, w), dtype=np.float32)
    return x_images, x_random, torch_references(torch_model, x_images, x_random)
