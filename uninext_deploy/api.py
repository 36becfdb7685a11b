"""The Python API; ``uninext-deploy`` (cli.py) is a thin layer over these functions.

The data path is one way: model (registry) -> static ONNX -> backend artifact -> Runner ->
parity / profile. Every function runs on embedded defaults (UniNeXt-T, seeded weights, shipped photos).
"""

from __future__ import annotations

import platform
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import __version__
from .artifact import GOLDEN, Artifact, atomic_folder, write_manifest
from .backends import canonical_target, get_backend
from .errors import UserError
from .export.calibration import calibration_set
from .export.onnx import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, export_onnx, set_metadata
from .export.precision import Int8Options, Int8Request, quantize_int8, to_fp16
from .device.imaging import preprocess
from .images import find_images, load_images
from .models import count_macs, count_params, create_model, get_spec, list_models
from .parity import GATED_INPUTS, TOLERANCES, Metrics, compare, failures, run_batched
from .profile import Latency, measure, summarize

if TYPE_CHECKING:
    import onnx

DEFAULT_MODEL = "uninext_t"
PRECISIONS = ("fp32", "fp16", "int8")


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {"uninext-deploy": __version__, "torch": torch.__version__.split("+")[0], "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "python": platform.python_version()}


def check_precision(precision: str) -> str:
    """``precision`` lower-cased, or one UserError naming the choices."""
    precision = precision.lower()
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def int8_request(torch_model: torch.nn.Module, options: Int8Options | None) -> Int8Request:
    """Calibration samples, held-out photos and the model's INT8 hints for quantizing ``torch_model``."""
    spec, options = torch_model.spec, options or Int8Options()
    batch, _, h, w = torch_model.input_shape
    pre = spec.preprocessing(h, w)
    return Int8Request(samples=calibration_set(pre, options.calib, options.calib_size, seed=options.seed),
                       batch=batch, options=options, check_inputs=images_tensor(pre, None),
                       classifier=spec.classifier, float_scope_patterns=spec.int8_float_scopes,
                       block_depth=spec.block_depth)


def precision_graph(float_model, precision: str, request: Int8Request | None) -> tuple["onnx.ModelProto", dict]:
    """The graph that carries ``precision``: the float graph itself, its FP16-typed or its QDQ form."""
    if precision == "fp32":
        return float_model, {}
    if precision == "fp16":
        return to_fp16(float_model)
    result = quantize_int8(float_model, request)
    report = dict(result.report)
    report["sensitivity"] = [{k: v for k, v in e.items() if k != "nodes"} for e in report["sensitivity"]]
    return result.model, report


def default_out(model: str, target: str, precision: str, batch: int, h: int, w: int) -> Path:
    return Path("artifacts") / f"{get_spec(model).name}-{target}-{precision}-b{batch}-{h}x{w}"


def export(model: str = DEFAULT_MODEL, target: str = "onnx", *, precision: str = "fp32", batch: int = 1,
           input_size: int | tuple[int, int] | None = None, out: str | Path | None = None,
           weights: str | None = None, seed: int = 0, opset: int | None = None,
           simplify: bool = True, int8: Int8Options | None = None, backend_options: dict | None = None) -> Artifact:
    """Export ``model`` to ``target`` and write the artifact folder (atomically) at ``out``.

    ``precision`` "fp16" writes an FP16-typed graph, "int8" a QDQ graph calibrated per ``int8``.
    ``opset`` defaults to the backend's (TensorRT: 17, for JetPack's parsers) or else 20.
    """
    target = canonical_target(target)
    precision = check_precision(precision)
    backend = get_backend(target, **(backend_options or {}))
    opset = opset or backend.default_opset or DEFAULT_OPSET
    torch_model = create_model(model, input_size=input_size, batch_size=batch, weights=weights, seed=seed)
    spec = torch_model.spec
    _, _, h, w = torch_model.input_shape
    out = Path(out) if out is not None else default_out(spec.name, target, precision, batch, h, w)
    with atomic_folder(out) as folder:
        exported = export_onnx(torch_model, opset=opset, simplify=simplify, seed=seed)
        pre = spec.preprocessing(h, w)
        set_metadata(exported.model, {
            "model": spec.name, "family": spec.family, "input_shape": list(torch_model.input_shape),
            "mean": list(spec.mean), "std": list(spec.std), "precision": precision,
            "weights": weights or f"seeded:{seed}", **{f"version.{k}": v for k, v in versions().items()
                                                         if k != "python"}})
        request = int8_request(torch_model, int8) if precision == "int8" else None
        graph, precision_report = ((exported.model, {}) if backend.applies_precision
                                   else precision_graph(exported.model, precision, request))
        onnx_path = folder / "model.onnx"
        onnx_path.write_bytes(graph.SerializeToString())
        compiled = backend.compile(onnx_path, folder, precision, request)
        precision_report.update(compiled.report)
        golden_x = images_tensor(pre, None, limit=max(batch, 4))
        golden_y = run_batched(_torch_runner(torch_model), golden_x, batch)
        np.savez_compressed(folder / GOLDEN, inputs=golden_x, outputs=golden_y)
        manifest = {
            "tool": "uninext-deploy", "tool_version": __version__,
            "model": {"name": spec.name, "family": spec.family, "source": spec.source,
                      "weights": str(weights) if weights else None, "seed": None if weights else seed,
                      "params": sum(p.numel() for p in torch_model.parameters())},
            "input": {"name": INPUT_NAME, "shape": list(torch_model.input_shape), "dtype": "float32",
                      "layout": "NCHW"},
            "output": {"name": OUTPUT_NAME, "shape": [batch, spec.num_classes], "dtype": "float32",
                       "meaning": f"ImageNet-{spec.num_classes} logits (before softmax)"},
            "preprocessing": pre, "precision": precision, "backend": backend.name, "target": target,
            "runtime": {backend.runtime_package: backend.runtime_version()},
            "onnx": {"opset": opset, "nodes": exported.graph.nodes, "ops": exported.graph.ops,
                     "simplified": simplify, "simplify_max_rel_dev": exported.simplify_max_abs},
            "precision_graph": precision_report,
            "export_seconds": round(exported.seconds, 2), "versions": versions(),
        }
        write_manifest(folder, manifest, {"model.onnx": "onnx", **compiled.files, GOLDEN: "golden"})
    return Artifact.open(out)


def _torch_runner(model: torch.nn.Module):
    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    return run


def images_tensor(pre: dict, folder: str | Path | None, limit: int | None = None) -> np.ndarray:
    """The photos of ``folder`` (default: the shipped ones) preprocessed per ``pre``, cycled to ``limit``."""
    paths = find_images(folder)
    images, _ = load_images(paths)
    if not images:
        raise UserError(f"no readable images in {folder}; pass a folder of jpg/png/bmp/webp images")
    if limit:
        images = [images[i % len(images)] for i in range(limit)]
    return np.stack([preprocess(im, pre) for im in images])


@dataclass
class ParityRun:
    batch: int
    artifact: str
    runner: str
    images: Metrics
    random: Metrics
    failed: list[str]
    divergence: str | None = None
    arm: dict | None = None  # the same artifact on the emulated aarch64 CPU: runner, metrics, vs x86

    @property
    def passed(self) -> bool:
        return not self.failed


@dataclass
class ParityReport:
    model: str
    target: str
    precision: str
    tolerance: dict
    runs: list[ParityRun] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.runs)

    def as_dict(self) -> dict:
        return {"model": self.model, "target": self.target, "precision": self.precision,
                "passed": self.passed, "tolerance": {k: {"bound": b, "kind": t} for k, (b, t) in
                                                     self.tolerance.items()},
                "runs": [{"batch": r.batch, "artifact": r.artifact, "runner": r.runner, "passed": r.passed,
                          "failed": r.failed,
                          "divergence": r.divergence, "images": r.images.as_dict(), "random": r.random.as_dict(),
                          "arm": None if r.arm is None else {k: v if isinstance(v, str) else v.as_dict()
                                                             for k, v in r.arm.items()}}
                         for r in self.runs]}


def check_artifact(artifact: Artifact, torch_model: torch.nn.Module, x_images: np.ndarray,
                   x_random: np.ndarray, *, threads: int | None = None,
                   references: tuple[np.ndarray, np.ndarray] | None = None, runner=None) -> ParityRun:
    """Compare ``artifact`` with ``torch_model`` on both input sets; on failure, locate the divergence.

    ``references``: the model's outputs on (x_images, x_random), when the caller already has them;
    ``runner``: the (runner, label) of runner_for, when the caller keeps it loaded.
    """
    from .divergence import locate_divergence

    tolerance = TOLERANCES[artifact.precision]
    batch = artifact.input_shape[0]
    runner, label = runner or runner_for(artifact, threads)
    references = references or torch_references(torch_model, x_images, x_random)
    metrics = {kind: compare(ref, run_batched(runner.run, x, batch))
               for kind, x, ref in (("images", x_images, references[0]), ("random", x_random, references[1]))}
    failed = [f"{kind}: {reason}" for kind, m in metrics.items() if kind in GATED_INPUTS[artifact.precision]
              for reason in failures(m, tolerance)]
    divergence = None
    if failed:
        probe = x_images[:batch] if len(x_images) >= batch else x_random[:batch]
        found = locate_divergence(torch_model, artifact.onnx_file(), probe, tolerance)
        divergence = str(found) if found else "no single module output misses the tolerance"
    return ParityRun(batch, str(artifact.path), label, metrics["images"], metrics["random"], failed, divergence)


def runner_for(artifact: Artifact, threads: int | None = None):
    """(runner, label) for ``artifact``: its backend's runner, or ONNX Runtime on the graph it was built
    from where this machine cannot run the backend (TensorRT without a GPU), said so in the label."""
    from .backends.ort import OrtRunner

    backend = get_backend(artifact.manifest["target"])
    reason = backend.cannot_run()
    if reason:
        return (OrtRunner(artifact.onnx_file(), threads),
                f"onnxruntime on the {backend.name} input graph ({reason}: engine parity runs where it can)")
    return backend.load(artifact, threads=threads), backend.name


def torch_references(torch_model: torch.nn.Module, *inputs: np.ndarray) -> tuple[np.ndarray, ...]:
    """PyTorch's outputs on each input set, one sample at a time."""
    return tuple(run_batched(_torch_runner(torch_model), x, 1) for x in inputs)


def parity(model: str = DEFAULT_MODEL, target: str = "ort", *, precision: str = "fp32",
           batches: tuple[int, ...] = (1, 2), input_size=None, images: str | Path | None = None,
           random_inputs: int = 4, weights: str | None = None, seed: int = 0,
           out: str | Path | None = None, threads: int | None = None,
           int8: Int8Options | None = None, backend_options: dict | None = None, platform: str = "host",
           cpu: str = "cortex-a76", arm_cache: str | Path | None = None, progress=None) -> ParityReport:
    """Export ``model`` at each batch size and compare the artifact with PyTorch on the same inputs.

    Inputs are the photos of ``images`` (default: the shipped photos) plus ``random_inputs`` seeded
    standard-normal tensors. Artifacts go to ``out`` (one sub-folder per batch) or a temporary folder.
    With ``platform="linux/arm64"`` every artifact also runs on an emulated aarch64 ``cpu`` (qemu) and is
    compared with PyTorch and with its x86 run; ``progress(done, total, elapsed_s, estimate_s)`` follows it.
    """
    from .arm.run import normalise_platform, runtime_for

    platform = normalise_platform(platform)
    target = canonical_target(target)
    precision = check_precision(precision)
    if platform == "linux/arm64":
        runtime_for(target, precision, cpu)  # refuse before exporting anything
    spec = get_spec(model)
    torch_model = create_model(spec.name, input_size=input_size, batch_size=1, weights=weights, seed=seed)
    _, _, h, w = torch_model.input_shape
    x_images = images_tensor(spec.preprocessing(h, w), images)
    x_random = np.random.default_rng(seed).standard_normal((random_inputs, 3, h, w), dtype=np.float32)
    references = torch_references(torch_model, x_images, x_random)
    report = ParityReport(spec.name, target, precision, TOLERANCES[precision])
    artifacts: list[Artifact] = []
    with (nullcontext(out) if out is not None else tempfile.TemporaryDirectory(prefix="uninext-parity-")) as root:
        for batch in batches:
            artifact = export(spec.name, target, precision=precision, batch=batch, input_size=(h, w),
                              out=Path(root) / f"b{batch}", weights=weights, seed=seed, int8=int8,
                              backend_options=backend_options)
            report.runs.append(check_artifact(artifact, torch_model, x_images, x_random, threads=threads,
                                              references=references))
            artifacts.append(artifact)
        if platform == "linux/arm64":
            _arm_parity(report, artifacts, x_images, x_random, references, cpu, arm_cache, progress)
    return report


def _arm_parity(report: ParityReport, artifacts: list[Artifact], x_images, x_random, references, cpu: str,
                arm_cache, progress) -> None:
    """Run every artifact on the emulated CPU in one worker; add its metrics and failures to the runs."""
    import time

    from .arm.environment import ArmEnvironment
    from .arm.run import CROSS_TOLERANCES, ArmJob, run_jobs

    x = np.concatenate([x_images, x_random])
    reference = np.concatenate(references)
    host_outputs, host_ms = [], 0.0
    for artifact in artifacts:
        runner = get_backend(artifact.manifest["target"]).load(artifact, threads=1)
        start = time.perf_counter()
        host_outputs.append(run_batched(runner.run, x, artifact.input_shape[0]))
        host_ms = max(host_ms, (time.perf_counter() - start) * 1000 * artifact.input_shape[0] / len(x))
    outputs = run_jobs([ArmJob(a, x) for a in artifacts], cpu, host_ms, ArmEnvironment(arm_cache), progress)
    n = len(x_images)
    for run, artifact, host, arm in zip(report.runs, artifacts, host_outputs, outputs):
        run.arm = {"runner": f"{artifact.manifest['target']} on emulated aarch64 {cpu} (qemu)",
                   "images": compare(reference[:n], arm[:n]), "random": compare(reference[n:], arm[n:]),
                   "vs_x86": compare(host, arm)}
        for kind in GATED_INPUTS[report.precision]:
            run.failed += [f"arm {kind}: {r}" for r in failures(run.arm[kind], report.tolerance)]
        run.failed += [f"arm vs x86: {r}" for r in failures(run.arm["vs_x86"], CROSS_TOLERANCES[report.precision])]


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

    @property
    def speedup(self) -> float | None:
        return self.eager.p50_ms / self.backend.p50_ms if self.eager else None

    def as_dict(self) -> dict:
        return {"model": self.model, "target": self.target, "precision": self.precision, "batch": self.batch,
                "threads": self.threads, "runner": self.runner, "backend": self.backend.as_dict(),
                "eager": self.eager.as_dict() if self.eager else None, "speedup_vs_eager": self.speedup,
                "device": self.device.as_dict() if self.device else None,
                "layers": self.layers}


def profile(model: str = DEFAULT_MODEL, target: str = "ort", *, precision: str = "fp32", batch: int = 1,
            input_size=None, threads: int | None = None, warmup: int = 10, iters: int | None = None,
            seconds: float | None = None, per_layer: bool = False, eager: bool = True,
            weights: str | None = None, seed: int = 0, out: str | Path | None = None,
            int8: Int8Options | None = None) -> ProfileReport:
    """Latency of the ``target`` artifact and of PyTorch eager, measured in the same run and thread count."""
    import os

    target = canonical_target(target)
    threads = threads or os.cpu_count() or 1
    with (nullcontext(out) if out is not None else tempfile.TemporaryDirectory(prefix="uninext-profile-")) as root:
        artifact = export(model, target, precision=precision, batch=batch, input_size=input_size,
                          out=Path(root) / "artifact", weights=weights, seed=seed, int8=int8)
        runner = get_backend(target).load(artifact, threads=threads)
        x = np.random.default_rng(seed).standard_normal(artifact.input_shape, dtype=np.float32)
        backend_latency = measure(lambda: runner.run(x), batch=batch, warmup=warmup, iters=iters, seconds=seconds)
        device_times = runner.device_times_ms(backend_latency.runs)
        device = summarize(device_times, batch) if device_times else None
        layers = runner.per_layer_profile(x) if per_layer else []
        info = runner.info()
    eager_latency = None
    if eager:
        torch_model = create_model(model, input_size=input_size, batch_size=batch, weights=weights, seed=seed)
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            xt = torch.from_numpy(x)
            with torch.inference_mode():
                eager_latency = measure(lambda: torch_model(xt), batch=batch, warmup=warmup, iters=iters,
                                        seconds=seconds)
        finally:
            torch.set_num_threads(previous)
    return ProfileReport(get_spec(model).name, target, artifact.precision, batch, threads, info,
                         backend_latency, eager_latency, layers, device)


def models_table(family: str | None = None) -> list[dict]:
    """One row per registered variant: measured params and GMACs next to the official values."""
    rows = []
    for name in list_models(family):
        spec = get_spec(name)
        params, macs = count_params(name), count_macs(name)
        rows.append({"name": name, "family": spec.family, "input_size": spec.native_size,
                     "params_m": params / 1e6, "gmacs": macs / 1e9,
                     "official_params_m": spec.official_params / 1e6, "official_gmacs": spec.official_gmacs,
                     "params_delta_pct": 100 * (params / spec.official_params - 1),
                     "gmacs_delta_pct": 100 * (macs / 1e9 / spec.official_gmacs - 1)})
    return rows
