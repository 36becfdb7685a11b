"""``uninext-deploy``: a thin typer layer over :mod:`uninext_deploy.api`.

User errors print one line and exit 2; a failed parity check exits 1; nothing prints a traceback for
a mistake the user can fix.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from . import api
from .errors import ParityFailure, UserError
from .export.precision import Int8Options
from .parity import GATED_INPUTS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export UniNeXt / ConvMLP / UniNet backbones to ONNX Runtime, OpenVINO and TensorRT, "
                       "and prove the artifacts match PyTorch.")
# Rich assumes 80 columns when not writing to a terminal; piped output should not be cut short.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

Model = Annotated[str, typer.Option("--model", "-m", help="Registered model name (see `models`).")]
Target = Annotated[str, typer.Option("--target", "-t", help="onnx, ort, openvino or trt (aliases: "
                                                            "onnxruntime, ov, tensorrt, engine).")]
Fp16 = Annotated[bool, typer.Option("--fp16", help="FP16 precision.")]
Int8 = Annotated[bool, typer.Option("--int8", help="INT8 post-training quantization.")]
InputSize = Annotated[Optional[tuple[int, int]], typer.Option("--input-size", help="Input height and width "
                                                              "(default: the model's native size).")]
Weights = Annotated[Optional[Path], typer.Option("--weights", help="Official checkpoint (state dict) to load.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the deterministic weights used without --weights.")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="CPU threads (default: all cores).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]
Calib = Annotated[Optional[Path], typer.Option("--calib", help="INT8: folder of calibration images (default: "
                                                                "the shipped photos, augmented).")]
CalibSize = Annotated[int, typer.Option("--calib-size", help="INT8: number of calibration samples.")]
CalibMethod = Annotated[str, typer.Option("--calib-method", help="INT8: minmax, entropy or percentile.")]
MinCosine = Annotated[Optional[float], typer.Option("--min-cosine", help="INT8: fall back to float, most "
                                                                         "sensitive block first, until the cosine "
                                                                         "to the float graph reaches this.")]
QuantizeClassifier = Annotated[bool, typer.Option("--quantize-classifier", help="INT8: quantize the final "
                                                                                "classifier too.")]
TrtVersion = Annotated[Optional[str], typer.Option("--trt-version", help="TensorRT: version to check the graph "
                                                                          "against (default: installed, else 10.3).")]
Force = Annotated[bool, typer.Option("--force", help="TensorRT: export even when the compatibility check fails.")]
DlaCore = Annotated[Optional[int], typer.Option("--dla-core", help="TensorRT: build for this Jetson DLA core.")]

Platform = Annotated[str, typer.Option("--platform", help="linux/x86_64 (this machine) or linux/arm64 (also run "
                                                           "on an emulated aarch64 CPU).")]
Cpu = Annotated[str, typer.Option("--cpu", help="Emulated ARM CPU (qemu -cpu): cortex-a76 is Jetson Orin / "
                                                 "Raspberry Pi 5 class.")]
ArmCache = Annotated[Optional[Path], typer.Option("--arm-cache", help="Where the ARM environment is set up once "
                                                                      "(default: ~/.cache).")]


def _handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, ParityFailure) as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted; nothing half-written was left behind")
            raise typer.Exit(130) from None
    return wrapper


def _precision(fp16: bool, int8: bool) -> str:
    if fp16 and int8:
        raise UserError("--fp16 and --int8 exclude each other; pick one")
    return "fp16" if fp16 else "int8" if int8 else "fp32"


def _backend_options(**options) -> dict:
    """The backend options the user set (their backend refuses them if it does not take them)."""
    return {name: value for name, value in options.items() if value is not None and value is not False}


def _int8_options(calib, calib_size, calib_method, min_cosine, quantize_classifier, seed) -> Int8Options:
    return Int8Options(calib=calib, calib_size=calib_size, method=calib_method, min_cosine=min_cosine,
                       quantize_classifier=quantize_classifier, seed=seed)


def _print_json(data) -> None:
    out.print_json(json.dumps(data, default=str))


@app.command()
@_handle_errors
def models(family: Annotated[Optional[str], typer.Option(help="Only this family.")] = None,
           as_json: Json = False) -> None:
    """List every model with measured params / GMACs next to the official values."""
    rows = api.models_table(family)
    if as_json:
        return _print_json(rows)
    table = Table(title="Registered models (MACs at the native size, batch 1)")
    for col in ("model", "family", "input", "params (M)", "official", "GMACs", "official"):
        table.add_column(col, justify="left" if col in ("model", "family") else "right")
    for r in rows:
        table.add_row(r["name"], r["family"], str(r["input_size"]), f"{r['params_m']:.2f}",
                      f"{r['official_params_m']:.2f}", f"{r['gmacs']:.3f}", f"{r['official_gmacs']:.3f}")
    out.print(table)


@app.command()
@_handle_errors
def export(model: Model = api.DEFAULT_MODEL, target: Target = "onnx", fp16: Fp16 = False, int8: Int8 = False,
           batch: Annotated[int, typer.Option("--batch", "-b", help="Static batch size.")] = 1,
           input_size: InputSize = None,
           out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Artifact folder to write.")] = None,
           weights: Weights = None, seed: Seed = 0,
           opset: Annotated[Optional[int], typer.Option(help="ONNX opset (>= 17; default 20, TensorRT 17).")] = None,
           simplify: Annotated[bool, typer.Option(help="Simplify with onnxsim.")] = True,
           calib: Calib = None, calib_size: CalibSize = 32, calib_method: CalibMethod = "percentile",
           min_cosine: MinCosine = None, quantize_classifier: QuantizeClassifier = False,
           trt_version: TrtVersion = None, force: Force = False, dla_core: DlaCore = None,
           as_json: Json = False) -> None:
    """Export a model to a static-shape artifact for one runtime and precision."""
    if opset is not None and opset < 17:
        raise UserError(f"opset {opset} is too old: LayerNormalization needs opset >= 17")
    with err.status(f"exporting {model} to {target}..."):
        artifact = api.export(model, target, precision=_precision(fp16, int8), batch=batch, input_size=input_size,
                              out=out_dir, weights=str(weights) if weights else None, seed=seed, opset=opset,
                              simplify=simplify, int8=_int8_options(calib, calib_size, calib_method, min_cosine,
                                                                    quantize_classifier, seed),
                              backend_options=_backend_options(trt_version=trt_version, force=force, dla_core=dla_core))
    m = artifact.manifest
    if as_json:
        return _print_json({"artifact": str(artifact.path), "manifest": m})
    out.print(f"[green]wrote[/green] {artifact.path}  ({m['model']['name']}, {m['target']}, {m['precision']}, "
              f"input {tuple(m['input']['shape'])}, {m['onnx']['nodes']} ONNX nodes, {m['export_seconds']} s)")
    for name, entry in m["files"].items():
        out.print(f"  {name:<16} {entry['bytes'] / 1e6:8.2f} MB  {entry['role']}")
    graph = m.get("precision_graph") or {}
    check = graph.get("tensorrt_check")
    if check:
        for problem in check["errors"] + check["warnings"]:
            err.print(f"TensorRT {check['tensorrt']} check: {problem}", highlight=False)
        out.print(f"TensorRT engine: {graph['engine']}" if isinstance(graph["engine"], str)
                  else f"TensorRT engine built: {graph['engine']}", highlight=False)
    if "fp32_ops" in graph:
        out.print(f"FP16 graph; kept in FP32: {', '.join(graph['fp32_ops'])}")
    if "method" in graph:
        out.print(f"INT8 QDQ ({graph['method']} calibration on {graph['calib_size']} samples): cosine to the float "
                  f"graph {graph['cosine_vs_float']:.5f}; {len(graph['kept_float'])} quantizable nodes kept float")
        for entry in graph["sensitivity"][:10]:
            mark = "fell back to float" if entry["block"] in graph["fallback"] else ""
            out.print(f"  {entry['block']:<28} error {entry['error']:.2e}  {mark}")


@app.command()
@_handle_errors
def parity(model: Model = api.DEFAULT_MODEL, target: Target = "ort", fp16: Fp16 = False, int8: Int8 = False,
           batch: Annotated[Optional[list[int]], typer.Option("--batch", "-b", help="Batch size(s) to export "
                                                               "and check; repeat for several.")] = None,
           input_size: InputSize = None,
           images: Annotated[Optional[Path], typer.Option(help="Folder of real images (default: shipped "
                                                                 "photos).")] = None,
           random_inputs: Annotated[int, typer.Option("--random", help="Seeded random inputs too.")] = 4,
           weights: Weights = None, seed: Seed = 0, threads: Threads = None,
           out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Keep the artifacts here.")] = None,
           calib: Calib = None, calib_size: CalibSize = 32, calib_method: CalibMethod = "percentile",
           min_cosine: MinCosine = None, quantize_classifier: QuantizeClassifier = False,
           trt_version: TrtVersion = None, force: Force = False,
           platform: Platform = "host", cpu: Cpu = "cortex-a76", arm_cache: ArmCache = None,
           as_json: Json = False) -> None:
    """Check an artifact against PyTorch: max/mean abs error, cosine, SQNR, top-1/top-5 agreement."""
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[eta]}"),
                  console=err, transient=True) as bar:
        task = bar.add_task(f"exporting {model} to {target} and comparing with PyTorch", total=None, eta="")

        def arm_progress(done, total, elapsed, estimate):
            bar.update(task, description=f"emulated aarch64 {cpu}: batch {done}/{total}", total=total,
                       completed=done, eta=f"{elapsed:.0f} s of about {max(estimate, elapsed):.0f} s")

        report = api.parity(model, target, precision=_precision(fp16, int8), batches=tuple(batch or (1, 2)),
                            input_size=input_size, images=images, random_inputs=random_inputs,
                            weights=str(weights) if weights else None, seed=seed, out=out_dir, threads=threads,
                            int8=_int8_options(calib, calib_size, calib_method, min_cosine, quantize_classifier, seed),
                            backend_options=_backend_options(trt_version=trt_version, force=force),
                            platform=platform, cpu=cpu, arm_cache=arm_cache, progress=arm_progress)
    if as_json:
        _print_json(report.as_dict())
    else:
        _print_parity(report)
    if not report.passed:
        raise ParityFailure("parity failed: " + "; ".join(f"batch {r.batch}: {', '.join(r.failed)}"
                                                          for r in report.runs if r.failed))


def _metrics_row(table, batch: str, kind: str, m, verdict: str) -> None:
    table.add_row(batch, kind, str(m.samples), f"{m.max_abs:.1e}", f"{m.mean_abs:.1e}", f"{m.rel_max_abs:.1e}",
                  f"{m.cosine:.6f}", f"{m.sqnr_db:.1f}", f"{m.top1:.2f}", f"{m.top5:.2f}", verdict)


def _print_parity(report) -> None:
    bounds = ", ".join(f"{k} {'>=' if kind == 'min' else '<='} {b:g}" for k, (b, kind) in report.tolerance.items())
    table = Table(title=f"Parity {report.model} -> {report.target} {report.precision} vs PyTorch ({bounds})",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("bs", "inputs", "n", "max abs", "mean abs", "rel max", "cosine", "SQNR", "top1", "top5", ""):
        table.add_column(col, justify="right", no_wrap=True)
    for r in report.runs:
        for kind, m in (("photos", r.images), ("random", r.random)):
            key = "images" if kind == "photos" else kind
            bad = [f.split(":")[1].split()[0] for f in r.failed if f.startswith(key)]
            verdict = ("report" if key not in GATED_INPUTS[report.precision] else
                       "[green]pass[/green]" if not bad else f"[red]FAIL {','.join(bad)}[/red]")
            _metrics_row(table, str(r.batch), kind, m, verdict)
        if r.arm:
            for kind, key, prefix in (("arm photos", "images", "arm images:"), ("arm random", "random", "arm random:"),
                                      ("arm vs x86", "vs_x86", "arm vs x86:")):
                bad = [f for f in r.failed if f.startswith(prefix)]
                verdict = ("report" if key == "random" and key not in GATED_INPUTS[report.precision] else
                           "[green]pass[/green]" if not bad else "[red]FAIL[/red]")
                _metrics_row(table, str(r.batch), kind, r.arm[key], verdict)
    out.print(table)
    runners = [r.runner for r in report.runs] + [r.arm["runner"] for r in report.runs if r.arm]
    for runner in dict.fromkeys(runners):
        out.print(f"runner: {runner}", highlight=False)
    for r in report.runs:
        if r.divergence:
            out.print(f"batch {r.batch}: {r.divergence}", highlight=False)


@app.command()
@_handle_errors
def profile(model: Model = api.DEFAULT_MODEL, target: Target = "ort", fp16: Fp16 = False, int8: Int8 = False,
            batch: Annotated[int, typer.Option("--batch", "-b")] = 1, input_size: InputSize = None,
            threads: Threads = None, warmup: Annotated[int, typer.Option(help="Untimed runs first.")] = 10,
            iters: Annotated[Optional[int], typer.Option(help="Timed runs (default 50).")] = None,
            seconds: Annotated[Optional[float], typer.Option(help="Time budget instead of --iters.")] = None,
            per_layer: Annotated[bool, typer.Option("--per-layer", help="Per-layer time breakdown.")] = False,
            eager: Annotated[bool, typer.Option(help="Also time PyTorch eager.")] = True,
            weights: Weights = None, seed: Seed = 0,
            calib: Calib = None, calib_size: CalibSize = 32, calib_method: CalibMethod = "percentile",
            min_cosine: MinCosine = None, quantize_classifier: QuantizeClassifier = False,
            as_json: Json = False) -> None:
    """Latency percentiles and throughput of an artifact, next to PyTorch eager."""
    if iters is not None and seconds is not None:
        raise UserError("--iters and --seconds exclude each other; pick one")
    with err.status(f"profiling {model} on {target}..."):
        report = api.profile(model, target, precision=_precision(fp16, int8), batch=batch, input_size=input_size,
                             threads=threads, warmup=warmup, iters=iters, seconds=seconds, per_layer=per_layer,
                             eager=eager, weights=str(weights) if weights else None, seed=seed,
                             int8=_int8_options(calib, calib_size, calib_method, min_cosine, quantize_classifier,
                                                seed))
    if as_json:
        return _print_json(report.as_dict())
    table = Table(title=f"Latency {report.model} batch {report.batch}, {report.threads} threads (ms)")
    for col in ("runner", "runs", "mean", "std", "min", "p50", "p90", "p99", "samples/s", "vs eager"):
        table.add_column(col, justify="right")
    rows = [(f"{report.target} {report.precision}", report.backend, report.speedup)]
    if report.device:
        rows.append((f"{report.target} on device", report.device, report.eager.p50_ms / report.device.p50_ms
                     if report.eager else None))
    if report.eager:
        rows.append(("pytorch eager", report.eager, 1.0))
    for name, lat, ratio in rows:
        table.add_row(name, str(lat.runs), f"{lat.mean_ms:.2f}", f"{lat.std_ms:.2f}", f"{lat.min_ms:.2f}",
                      f"{lat.p50_ms:.2f}", f"{lat.p90_ms:.2f}", f"{lat.p99_ms:.2f}", f"{lat.throughput:.1f}",
                      "" if ratio is None else f"{ratio:.2f}x")
    out.print(table)
    if report.layers:
        layer_table = Table(title="Slowest layers")
        for col in ("layer", "op", "ms", "%"):
            layer_table.add_column(col, justify="left" if col == "layer" else "right")
        total = sum(layer["ms"] for layer in report.layers)
        for layer in report.layers[:15]:
            layer_table.add_row(layer["name"], layer["op"], f"{layer['ms']:.3f}", f"{100 * layer['ms'] / total:.1f}")
        out.print(layer_table)


@app.command()
@_handle_errors
def bundle(model: Model = api.DEFAULT_MODEL,
           target: Annotated[str, typer.Option("--target", "-t", help="ort, openvino or trt.")] = "ort",
           fp16: Fp16 = False, int8: Int8 = False,
           platform: Annotated[str, typer.Option("--platform", help="Device platform: linux/x86_64 or linux/arm64 "
                                                                     "(verified on an emulated aarch64 CPU).")] = "host",
           batch: Annotated[int, typer.Option("--batch", "-b", help="Static batch size.")] = 1,
           input_size: InputSize = None,
           out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Bundle folder to write (and "
                                                                                "FOLDER.tar.gz beside it).")] = None,
           weights: Weights = None, seed: Seed = 0, threads: Threads = None,
           calib: Calib = None, calib_size: CalibSize = 32, calib_method: CalibMethod = "percentile",
           min_cosine: MinCosine = None, quantize_classifier: QuantizeClassifier = False,
           trt_version: TrtVersion = None, force: Force = False, dla_core: DlaCore = None,
           cpu: Cpu = "cortex-a76", arm_cache: ArmCache = None, as_json: Json = False) -> None:
    """Package a proven artifact for the device: model, manifest, golden I/O and a torch-free run.py."""
    from .bundle import bundle as make_bundle
    from .device.runtimes import spec

    with err.status("bundling...") as status:
        result = make_bundle(model, target, precision=_precision(fp16, int8), platform=platform, batch=batch,
                             input_size=input_size, out=out_dir, weights=str(weights) if weights else None, seed=seed,
                             int8=_int8_options(calib, calib_size, calib_method, min_cosine, quantize_classifier, seed),
                             backend_options=_backend_options(trt_version=trt_version, force=force, dla_core=dla_core),
                             cpu=cpu, arm_cache=arm_cache, threads=threads,
                             progress=lambda step: status.update(f"bundling: {step}..."))
    m, b = result.manifest, result.manifest["bundle"]
    if as_json:
        return _print_json({"bundle": str(result.path), "archive": str(result.archive),
                            "archive_bytes": result.archive.stat().st_size, "manifest": m})
    out.print(f"[green]wrote[/green] {result.path} and {result.archive}  ({m['model']['name']}, {m['backend']} "
              f"{m['precision']}, {b['platform']}, needs {spec(b['runtime'])})", highlight=False)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("file", "role", "MB"):
        table.add_column(col, justify="right" if col == "MB" else "left")
    for name, role, size in result.sizes():
        table.add_row(name, role, f"{size / 1e6:.3f}")
    total = sum(size for _, _, size in result.sizes())
    table.add_row("[b]total[/b]", f"{len(m['files'])} files + manifest.json", f"[b]{total / 1e6:.3f}[/b]")
    table.add_row(result.archive.name, "archive (gzip)", f"{result.archive.stat().st_size / 1e6:.3f}")
    out.print(table)
    for where, v in b["verified"].items():
        out.print(f"golden check on {where} ({v['runner']}): {'pass' if v['passed'] else 'FAIL'}, cosine "
                  f"{v['metrics']['cosine']:.6f}, max abs {v['metrics']['max_abs']:.2e}", highlight=False)
    out.print(f"on the device: tar xzf {result.archive.name} && cd {result.path.name} && "
              "pip install -r requirements.txt && python3 run.py --verify", highlight=False)


@app.command()
@_handle_errors
def verify(path: Annotated[Optional[Path], typer.Argument(help="Bundle folder or .tar.gz (default: the newest "
                                                                 "in ./bundles).")] = None,
           platform: Platform = "host", cpu: Cpu = "cortex-a76", arm_cache: ArmCache = None,
           threads: Threads = None, as_json: Json = False) -> None:
    """Check a bundle: every file's checksum, then its golden outputs against PyTorch's."""
    from .bundle import newest_bundle, verify as verify_bundle

    path = path or newest_bundle(Path("bundles"))
    with err.status(f"verifying {path}..."):
        report = verify_bundle(path, platform=platform, cpu=cpu, arm_cache=arm_cache, threads=threads)
    if as_json:
        _print_json(report.as_dict())
    else:
        m = report.metrics
        out.print(f"integrity: {report.files_checked} files match manifest.json", highlight=False)
        out.print(f"golden: {'[green]PASS[/green]' if report.passed else '[red]FAIL[/red]'} on {m.samples} inputs with "
                  f"{report.runner} ({report.platform}): cosine {m.cosine:.6f}, max abs {m.max_abs:.2e}, rel "
                  f"{m.rel_max_abs:.2e}, top-1 {m.top1:.2f}, top-5 {m.top5:.2f}", highlight=False)
    if not report.passed:
        raise ParityFailure(f"bundle {path} failed its golden check: {'; '.join(report.failed)}")


Targets = Annotated[Optional[list[str]], typer.Option("--targets", help="Backends to try, repeated or comma-separated "
                                                                        "(default: ort, openvino, and trt where it runs).")]
Precisions = Annotated[Optional[list[str]], typer.Option("--precisions", help="Precisions to try (default: fp32, "
                                                                              "fp16, int8).")]
CalibMethods = Annotated[Optional[list[str]], typer.Option("--calib-methods", help="INT8 calibration methods to try "
                                                                                   "where the graph is quantized "
                                                                                   "(default: percentile, entropy).")]
BudgetCosine = Annotated[Optional[float], typer.Option("--min-cosine", help="Budget: worst per-photo cosine to "
                                                                            "PyTorch (default 0.99).")]
BudgetTop1 = Annotated[Optional[float], typer.Option("--max-top1-drop", help="Budget instead: percent of photos whose "
                                                                             "top-1 class may differ from PyTorch's.")]
Iters = Annotated[int, typer.Option("--iters", help="Timed runs per candidate.")]


def _listed(values: Optional[list[str]], default) -> tuple[str, ...]:
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip()) if values else tuple(default)


@contextlib.contextmanager
def _search_progress():
    """A progress bar on stderr and the ``progress(done, total, step)`` callback that drives it."""
    with Progress(TextColumn("{task.description:<48}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  console=err, transient=True) as bar:
        task = bar.add_task("starting", total=None)
        yield lambda done, total, step: bar.update(task, description=step, completed=done, total=total)


@app.command()
@_handle_errors
def optimize(model: Model = api.DEFAULT_MODEL, platform: Platform = "host", min_cosine: BudgetCosine = None,
             max_top1_drop: BudgetTop1 = None, targets: Targets = None, precisions: Precisions = None,
             calib_methods: CalibMethods = None,
             batch: Annotated[int, typer.Option("--batch", "-b", help="Static batch size.")] = 1,
             input_size: InputSize = None, threads: Threads = None, iters: Iters = 30,
             images: Annotated[Optional[Path], typer.Option(help="Folder of real images for the budget (default: "
                                                                 "shipped photos).")] = None,
             calib: Calib = None, weights: Weights = None, seed: Seed = 0,
             out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the report and the "
                                                                                  "winner's bundle.")] = None,
             bundle: Annotated[bool, typer.Option(help="Write the winner as a bundle.")] = True,
             cpu: Cpu = "cortex-a76", arm_cache: ArmCache = None, as_json: Json = False) -> None:
    """The fastest artifact within an accuracy budget: search, report, bundle."""
    from .optimize import DEFAULT_TARGETS, optimize as run_search

    with _search_progress() as progress:
        result, folder = run_search(
            model, platform=platform, min_cosine=min_cosine, max_top1_drop=max_top1_drop,
            targets=_listed(targets, DEFAULT_TARGETS), precisions=_listed(precisions, api.PRECISIONS),
            calib_methods=_listed(calib_methods, ("percentile", "entropy")), batch=batch, input_size=input_size,
            threads=threads, iters=iters, images=images, calib=calib, weights=str(weights) if weights else None,
            seed=seed, out=out_dir, make_bundle=bundle, cpu=cpu, arm_cache=arm_cache, progress=progress)
    _print_search(result, folder, as_json)
    if result.best is None:
        raise ParityFailure(result.note or "no candidate met the budget")


@app.command()
@_handle_errors
def report(results: Annotated[Optional[Path], typer.Argument(help="results.json of an earlier optimize or report "
                                                                  "(default: search now, without a bundle).")] = None,
           model: Model = api.DEFAULT_MODEL, min_cosine: BudgetCosine = None, max_top1_drop: BudgetTop1 = None,
           targets: Targets = None, precisions: Precisions = None, input_size: InputSize = None,
           threads: Threads = None, iters: Iters = 30,
           out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for report.md / report.html "
                                                                                "(default: beside RESULTS).")] = None,
           as_json: Json = False) -> None:
    """Markdown and self-contained HTML report of the candidates (from results.json, or measured now)."""
    from .optimize import DEFAULT_TARGETS, OptimizeResult, optimize as run_search
    from .report import write_report

    if results is not None:
        result = OptimizeResult.load(results)
        folder = out_dir or results.parent
        folder.mkdir(parents=True, exist_ok=True)
        write_report(result, folder)
    else:
        with _search_progress() as progress:
            result, folder = run_search(
                model, min_cosine=min_cosine, max_top1_drop=max_top1_drop,
                targets=_listed(targets, DEFAULT_TARGETS), precisions=_listed(precisions, api.PRECISIONS),
                input_size=input_size, threads=threads, iters=iters, make_bundle=False,
                out=out_dir or Path("reports") / api.get_spec(model).name, progress=progress)
    _print_search(result, folder, as_json)


def _print_search(result, folder: Path, as_json: bool) -> None:
    from .report import COLUMNS, cell, rows

    if as_json:
        return _print_json({"folder": str(folder), **result.as_dict()})
    table = Table(title=f"{result.model} {result.input_shape}, {result.threads} threads: candidates vs PyTorch eager "
                        f"p50 {result.eager.p50_ms:.2f} ms", box=box.SIMPLE_HEAD)
    for title, key, _ in COLUMNS:
        table.add_column(title, justify="left" if key == "candidate" else "right")
    colours = {"WINNER": "green", "fail": "red", "error": "red"}
    candidates = rows(result)
    for row in candidates:
        cells = [cell(row, key, spec) for _, key, spec in COLUMNS]
        if row["verdict"] in colours:
            cells[-1] = f"[{colours[row['verdict']]}]{cells[-1]}[/{colours[row['verdict']]}]"
        table.add_row(*cells)
    out.print(table)
    for row in candidates:
        if row["why"]:
            out.print(f"{row['candidate']}: {row['why']}", highlight=False)
    out.print(f"report: {folder / 'report.html'}  {folder / 'report.md'}", highlight=False)
    if result.bundle:
        out.print(f"bundle: {folder / result.bundle}  {folder / (result.bundle + '.tar.gz')}", highlight=False)


@app.command()
@_handle_errors
def doctor(as_json: Json = False) -> None:
    """Runtime versions (with install hints), CPU features and GPUs of this machine."""
    from .doctor import report

    info = report()
    if as_json:
        return _print_json(info)
    out.print(f"{info['platform']}, Python {info['python']}, {info['cpu']} ({info['cores']} cores)")
    out.print(f"CPU features: {', '.join(info['cpu_flags']) or 'none detected'}")
    out.print(f"GPUs: {', '.join(info['gpus']) or 'none'}")
    table = Table()
    table.add_column("package")
    table.add_column("version")
    table.add_column("install")
    for name, p in info["packages"].items():
        table.add_row(name, p["version"] or "[yellow]missing[/yellow]", p["hint"] or "")
    out.print(table)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    warnings.formatwarning = _one_line_warning
    app(prog_name="uninext-deploy")


if __name__ == "__main__":
    sys.exit(main())
