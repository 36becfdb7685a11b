"""``uninext-deploy``: a thin typer layer over :mod:`uninext_deploy.api`, built from option groups defined
once (cli_groups.py).

User errors print one line and exit 2; a failed parity check exits 1; nothing prints a traceback for
a mistake the user can fix. Progress of every step the library announces goes to stderr: live rows (a bar for
counted steps) on a terminal, else one line per step with the elapsed time (for logs and pipes).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from . import api
from .api import (BuildOptions, DeviceOptions, Int8Options, ModelOptions, ParityFailure, PlatformOptions, TimingOptions,
                  TrtOptions, UserError)
from .cli_groups import grouped
from .console import progress
from .console.reporters import shown_on

class _FlagHelp:
    """--help as a flag in the help it shows (typer labels it <bool>), like every flag of ours (metavar "")."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class _Command(_FlagHelp, typer.core.TyperCommand):
    pass


class _Group(_FlagHelp, typer.core.TyperGroup):
    pass


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export UniNeXt / ConvMLP / UniNet backbones to ONNX Runtime, OpenVINO and TensorRT, "
                       "and prove the artifacts match PyTorch.")
# Rich assumes 80 columns when not writing to a terminal; piped output should not be cut short.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

Target = Annotated[str, typer.Option("--target", "-t", help="ort, openvino or trt (also onnx: the portable ONNX, "
                                                            "run by ONNX Runtime; aliases onnxruntime, ov, tensorrt, "
                                                            "engine).", metavar="TARGET")]
Fp16 = Annotated[bool, typer.Option("--fp16", help="FP16 precision.", metavar="")]
Int8 = Annotated[bool, typer.Option("--int8", help="INT8 post-training quantization.", metavar="")]
Batch = Annotated[int, typer.Option("--batch", "-b", help="Static batch size.", metavar="N")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.", metavar="")]
Images = Annotated[Optional[Path], typer.Option("--images", help="Folder of real images (default: the shipped "
                                                                 "photos).", metavar="DIR")]
Existing = Annotated[Optional[Path], typer.Option("--artifact", help="Check or time this artifact folder or bundle "
                                                                     "(folder or .tar.gz) as it is, instead of "
                                                                     "exporting.", metavar="PATH")]
Labels = Annotated[Optional[Path], typer.Option("--labels", help="Class names of a fine-tuned classifier for the "
                                                                 "bundle, one per line (default: ImageNet's for "
                                                                 "1000 classes, else numbered).", metavar="FILE")]
# options users reach for that this tool spells otherwise -> what to pass instead
MISTAKEN = {"--precision": "precision is a flag, --fp16 or --int8 (FP32 without either)",
            "--quantize": "INT8 post-training quantization is --int8", "--half": "FP16 is --fp16"}
MIN_COSINE_MOVED = {"--min-cosine": "the INT8 fallback target (cosine to the float graph) is --int8-min-cosine; "
                                    "--min-cosine is optimize's budget (cosine to PyTorch)"}


def _version(value: bool) -> None:
    if value:
        out.print(f"uninext-deploy {api.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.",
                                                       callback=_version, is_eager=True, metavar="")] = False):
    """Export UniNeXt / ConvMLP / UniNet backbones to ONNX Runtime, OpenVINO and TensorRT, and prove the
    artifacts match PyTorch."""


def _handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            # an unknown target is refused before the command's first step is shown, as the options groups are
            for target in (kwargs.get("target"), *(_listed(kwargs.get("targets")) or ())):
                if target is not None:
                    api.canonical_target(target)
            return fn(*args, **kwargs)
        except (UserError, ParityFailure) as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted; nothing half-written was left behind")
            raise typer.Exit(130) from None
    return wrapper


@contextlib.contextmanager
def _steps(first: str):
    """The command as the step ``first``, with every step the library announces inside it (console/progress.py)
    shown on stderr: live rows (bars for counted steps) on a terminal, else one line per step with the seconds
    since the command started."""
    with shown_on(err, sys.stderr.isatty()) as reporter, progress.reporting(reporter), progress.step(first):
        yield


def _precision(fp16: bool, int8: bool) -> str:
    if fp16 and int8:
        raise UserError("--fp16 and --int8 exclude each other; pick one")
    return "fp16" if fp16 else "int8" if int8 else "fp32"


def _listed(values: Optional[list[str]]) -> tuple[str, ...] | None:
    """Repeated and comma-separated values as one tuple (None when not given)."""
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip()) if values else None


def _print_json(data) -> None:
    out.print_json(json.dumps(data, default=str))


@app.command(cls=_Command)
@_handle_errors
def models(family: Annotated[Optional[str], typer.Option("--family", help="Only this family (uninext, convmlp, "
                                                                           "uninet).", metavar="NAME")] = None,
           as_json: Json = False) -> None:
    """List every model with measured params / GMACs next to the official values."""
    rows = api.models_table(family)
    if as_json:
        return _print_json(rows)
    table = Table(title="Registered models (MACs at the native size, batch 1; --features stages as "
                        "index:channels/stride)")
    for col in ("model", "family", "input", "params (M)", "official", "GMACs", "official", "feature stages"):
        table.add_column(col, justify="left" if col in ("model", "family", "feature stages") else "right")
    for r in rows:
        official = r["official_params_m"] is not None
        table.add_row(r["name"], r["family"], str(r["input_size"]), f"{r['params_m']:.2f}",
                      f"{r['official_params_m']:.2f}" if official else "test", f"{r['gmacs']:.3f}",
                      f"{r['official_gmacs']:.3f}" if official else "test",
                      " ".join(f"{i}:{f['channels']}/{f['stride']}" for i, f in enumerate(r["features"])))
    out.print(table)


@app.command(cls=_Command)
@_handle_errors
@grouped(renamed=MIN_COSINE_MOVED, model=ModelOptions, int8_options=Int8Options, trt=TrtOptions)
def export(target: Target = api.DEFAULT_TARGET, fp16: Fp16 = False, int8: Int8 = False, batch: Batch = 1,
           out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Artifact folder to write.",
                                                           metavar="DIR")] = None,
           opset: Annotated[Optional[int], typer.Option(help="ONNX opset (>= 17; default 20, TensorRT 17).",
                                                        metavar="N")] = None,
           simplify: Annotated[bool, typer.Option(help="Simplify with onnxsim.", metavar="")] = True,
           as_json: Json = False, *, model: ModelOptions, int8_options: Int8Options, trt: TrtOptions) -> None:
    """Export a model to a static-shape artifact for one runtime and precision."""
    with _steps(f"exporting {model.model} to {target}"):
        artifact = api.export(model, target, precision=_precision(fp16, int8), batch=batch, out=out_dir,
                              opset=opset, simplify=simplify, int8=int8_options, trt=trt)
    m = artifact.manifest
    if as_json:
        return _print_json({"artifact": str(artifact.path), "manifest": m})
    out.print(f"[green]wrote[/green] {artifact.path}  ({m['model']['name']}, {m['target']}, {m['precision']}, "
              f"input {tuple(m['input']['shape'])}, {m['onnx']['nodes']} ONNX nodes, exported in "
              f"{m['export_seconds']} s)")
    for name, entry in m["files"].items():
        out.print(f"  {name:<16} {entry['bytes'] / 1e6:8.2f} MB  {entry['role']}")
    out.print("outputs: " + ", ".join(f"{o['name']} {'x'.join(map(str, o['shape']))}" for o in m["outputs"]),
              highlight=False)
    for line in api.describe(artifact):
        out.print(line, highlight=False)


@app.command(cls=_Command)
@_handle_errors
@grouped(renamed={**MIN_COSINE_MOVED, "--random": "use --random-inputs N (the number of seeded random inputs)",
                  "--batch": "parity checks a list of batch sizes: --batches 1,2"},
         model=ModelOptions, int8_options=Int8Options, trt=TrtOptions, platform=PlatformOptions,
         timing=(TimingOptions, "threads"), device=DeviceOptions)
def parity(target: Target = api.DEFAULT_TARGET, fp16: Fp16 = False, int8: Int8 = False,
           batches: Annotated[Optional[list[str]], typer.Option("--batches", help="Batch sizes to export and check, "
                                                                   "comma-separated or repeated (default 1,2).",
                                                                   metavar="N,N")] = None,
           images: Images = None,
           random_inputs: Annotated[int, typer.Option("--random-inputs", help="How many seeded random inputs to "
                                                                              "check beside the photos.",
                                                      metavar="N")] = 4,
           out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Keep the artifacts here.",
                                                           metavar="DIR")] = None,
           artifact: Existing = None, as_json: Json = False, *, model: ModelOptions, int8_options: Int8Options,
           trt: TrtOptions, platform: PlatformOptions, timing: TimingOptions, device: DeviceOptions) -> None:
    """Check an artifact against PyTorch: max/mean abs error, cosine, SQNR, top-1/top-5 agreement; with
    --device, also run on that device (its bundle's run.py) and compared there."""
    sizes = tuple(_int(b, "--batches") for b in _listed(batches) or ("1", "2"))
    what = artifact or f"{model.model} on {target}"
    with _steps(f"checking {what} against PyTorch"):
        report = api.parity(model, target, precision=_precision(fp16, int8), batches=sizes,
                            inputs=api.Inputs(images, random_inputs), out=out_dir, threads=timing.threads,
                            int8=int8_options, trt=trt, platform=platform, artifact=artifact, device=device)
    if as_json:
        _print_json(report.as_dict())
    else:
        _print_parity(report)
    if not report.passed:
        raise ParityFailure("parity failed: " + report.summary())


def _int(text: str, flag: str) -> int:
    if not re.fullmatch(r"-?\d+", text.strip()):
        raise UserError(f"{flag} takes whole numbers, got {text!r}")
    return int(text)


def _metrics_row(table, batch: str, kind: str, metrics, run, inputs: str, gated: bool) -> None:
    """One row per output (the output named beside the input set where the model has several)."""
    several = len(metrics.outputs) > 1
    for m in metrics.each():
        top = (f"{m.top1:.2f}", f"{m.top5:.2f}") if m.top1 is not None else ("-", "-")
        table.add_row(batch, f"{kind} {m.output}" if several or m.top1 is None else kind, str(m.samples), f"{m.max_abs:.1e}",
                      f"{m.mean_abs:.1e}", f"{m.rel_max_abs:.1e}", f"{m.cosine:.6f}", f"{m.sqnr_db:.1f}", *top,
                      _verdict(run, inputs, gated, m.output if several else ""))


def _verdict(run, inputs: str, gated: bool, output: str = "") -> str:
    if not gated:
        return "report"
    missed = [m for m in run.misses(inputs) if m.output == output]
    return "[green]pass[/green]" if not missed else f"[red]FAIL {','.join(m.metric for m in missed)}[/red]"


def _precision_ran(info: dict) -> str:
    """", inference precision f32" where the runtime chooses one (OpenVINO), else ""."""
    return f", inference precision {info['inference_precision']}" if "inference_precision" in info else ""


def _print_parity(report) -> None:
    gated = api.gated_inputs(report.precision)
    table = Table(title=f"Parity {report.model} -> {report.target} {report.precision} vs PyTorch "
                        f"({api.bounds_text(report.tolerance)})", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for col in ("bs", "inputs", "n", "max abs", "mean abs", "rel max", "cosine", "SQNR", "top1", "top5", ""):
        table.add_column(col, justify="right", no_wrap=True)
    for r in report.runs:
        for label, key in (("photos", "images"), ("random", "random")):
            _metrics_row(table, str(r.batch), label, getattr(r, key), r, key, key in gated)
        if r.arm:
            for label, key, inputs, is_gated in (("arm photos", "images", "arm images", True),
                                                 ("arm random", "random", "arm random", "random" in gated),
                                                 ("arm vs host", "vs_host", "arm vs host", True)):
                _metrics_row(table, str(r.batch), label, r.arm[key], r, inputs, is_gated)
        if r.device:
            for label, key, inputs, is_gated in (("device photos", "images", "device images", True),
                                                 ("device random", "random", "device random", "random" in gated),
                                                 ("device vs host", "vs_host", "device vs host", True)):
                _metrics_row(table, str(r.batch), label, r.device[key], r, inputs, is_gated)
    out.print(table)
    if any(key not in gated for key in ("images", "random")):
        out.print(f"report: shown, not held to the tolerance: {report.precision} is judged on the photos, since its "
                  "error on seeded noise says little about real inputs", highlight=False)
    runners = [r.runner + _precision_ran(r.runtime) for r in report.runs] + [
        found["runner"] for r in report.runs for found in (r.arm, r.device) if found]
    for runner in dict.fromkeys(runners):
        out.print(f"runner: {runner}", highlight=False)
    for r in report.runs:
        if r.divergence:
            out.print(f"batch {r.batch}: {r.divergence}", highlight=False)


@app.command(cls=_Command)
@_handle_errors
@grouped(renamed=MIN_COSINE_MOVED, model=ModelOptions, int8_options=Int8Options, trt=TrtOptions,
         timing=TimingOptions, device=DeviceOptions)
def profile(target: Target = api.DEFAULT_TARGET, fp16: Fp16 = False, int8: Int8 = False, batch: Batch = 1,
            per_layer: Annotated[bool, typer.Option("--per-layer", help="Per-layer time breakdown.", metavar="")] = False,
            eager: Annotated[bool, typer.Option(help="Also time PyTorch eager.", metavar="")] = True,
            out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Keep the artifact here.",
                                                            metavar="DIR")] = None,
            artifact: Existing = None, public_key: Annotated[Optional[Path], typer.Option(
                "--public-key", help="--device: refuse the bundle there unless its manifest is signed by this "
                                     "Ed25519 public key (PEM, from keygen).", metavar="PEM")] = None,
            as_json: Json = False, *, model: ModelOptions, int8_options: Int8Options,
            trt: TrtOptions, timing: TimingOptions, device: DeviceOptions) -> None:
    """Latency percentiles and throughput of an artifact, next to PyTorch eager; with --device, of a bundle on
    the device by its own run.py (load, first run and steady state apart, with the device's state)."""
    where = device.devices or device.device
    with _steps(f"profiling {artifact or model.model + ' on ' + target}" + (f" on {where}" if where else "")):
        report = api.profile(model, target, precision=_precision(fp16, int8), batch=batch, timing=timing,
                             per_layer=per_layer, eager=eager, out=out_dir, int8=int8_options, trt=trt,
                             artifact=artifact, device=device, public_key=public_key)
    if device.fleet:
        return _end_fleet(report, as_json)
    if as_json:
        return _print_json(report.as_dict())
    if device.device is not None:
        return _print_device_profile(report)
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
    info = report.runner
    out.print(f"runner: {info['runtime']} {info['version']} on {info['device']}, threads {info['threads']}"
              + _precision_ran(info), highlight=False)
    if report.memory:
        mem = report.memory
        out.print(f"memory: peak RSS {mem['peak_rss_mb']:.0f} MB in a process running it alone (the runtime itself "
                  f"{mem['runtime_rss_mb']:.0f} MB); artifact {mem['artifact_mb']:.2f} MB", highlight=False)
    if report.layers:
        layer_table = Table(title="Slowest layers")
        for col in ("layer", "op", "ms", "%"):
            layer_table.add_column(col, justify="left" if col == "layer" else "right")
        total = sum(layer["ms"] for layer in report.layers)
        for layer in report.layers[:15]:
            layer_table.add_row(layer["name"], layer["op"], f"{layer['ms']:.3f}", f"{100 * layer['ms'] / total:.1f}")
        out.print(layer_table)
        out.print(report.kernels.describe(), highlight=False)


def _print_device_profile(report) -> None:
    table = Table(title=f"Latency {report.model} batch {report.batch} on {report.device} ({report.machine}), ms")
    for col in ("runner", "load", "first", "runs", "min", "p50", "p90", "p99", "samples/s", "peak RSS MB"):
        table.add_column(col, justify="right")
    lat, info = report.latency, report.runner
    table.add_row(f"{info['runtime']} {info['version']} {report.precision}", f"{report.load_ms:.0f}",
                  f"{report.first_ms:.2f}", str(lat.runs), f"{lat.min_ms:.2f}", f"{lat.p50_ms:.2f}",
                  f"{lat.p90_ms:.2f}", f"{lat.p99_ms:.2f}", f"{lat.throughput:.1f}", f"{report.peak_rss_mb:.0f}")
    out.print(table)
    after = report.state["after"]
    facts = [f"governor {after['governor'] or 'not exposed'}",
             f"CPU {after['cpu_mhz']}/{after['cpu_max_mhz']} MHz" if after["cpu_mhz"] else "CPU clock not exposed",
             f"{after['temperature_c']:.0f} C" if after["temperature_c"] is not None else "temperature not exposed",
             f"load {report.state['before']['load_1m']} on {after['cpus']} CPUs before timing"]
    if after.get("jetson"):
        facts.append(f"Jetson power mode {after['power_mode'] or '?'}, GPU {after['gpu_mhz'] or '?'} MHz")
    out.print("device state: " + ", ".join(facts), highlight=False)
    for warning in report.warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if report.cached:
        out.print(f"from the results store: this bundle was timed so on {report.device} at {report.cached}; --fresh "
                  "times it again", highlight=False)


@app.command(cls=_Command)
@_handle_errors
@grouped(renamed=MIN_COSINE_MOVED, model=ModelOptions, int8_options=Int8Options, trt=TrtOptions,
         platform=PlatformOptions, timing=(TimingOptions, "threads"), device=DeviceOptions)
def bundle(target: Target = api.DEFAULT_TARGET, fp16: Fp16 = False, int8: Int8 = False, batch: Batch = 1,
           out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Bundle folder to write (and "
                                                                                "FOLDER.tar.gz beside it).",
                                                           metavar="DIR")] = None,
           labels: Labels = None,
           cpp: Annotated[bool, typer.Option("--cpp", help="Add a C++ runner (cpp/: CMake, one C++17 source per "
                                             "runtime), built and verified here like run.py (cross-compiled and "
                                             "run on the emulated CPU for linux/arm64).", metavar="")] = False,
           sign_key: Annotated[Optional[Path], typer.Option(
               "--sign-key", help="Sign the manifest (which holds every file's sha256) with this Ed25519 private "
                                  "key (PEM, from keygen).", metavar="PEM")] = None,
           fetch_engine: Annotated[bool, typer.Option(
               "--fetch-engine", help="With --device and --target trt: bring the engine the device built during "
                                      "its check back into the bundle, recorded with the GPU and TensorRT version "
                                      "it is valid for.", metavar="")] = False,
           as_json: Json = False, *, model: ModelOptions, int8_options: Int8Options, trt: TrtOptions,
           platform: PlatformOptions, timing: TimingOptions, device: DeviceOptions) -> None:
    """Package a proven artifact for the device: model, manifest, golden I/O and a torch-free run.py; with
    --device, proven on that device too (its run.py --verify there) before it is written."""
    with _steps(f"bundling {model.model} for {target}"):
        result = api.bundle(model, target, precision=_precision(fp16, int8), platform=platform, batch=batch,
                            out=out_dir, threads=timing.threads, int8=int8_options, trt=trt, labels=labels,
                            cpp=cpp, sign_key=sign_key, device=device, fetch_engine=fetch_engine)
    m, b = result.manifest, result.manifest["bundle"]
    if as_json:
        return _print_json({"bundle": str(result.path), "archive": str(result.archive),
                            "archive_bytes": result.archive.stat().st_size, "manifest": m})
    cpp_needs = b.get("cpp", {}).get("runtime")
    needs = api.requirement_text(b["runtime"]) + (f"; its C++ runner {api.requirement_text(cpp_needs)}"
                                                  if cpp_needs and cpp_needs != b["runtime"] else "")
    out.print(f"[green]wrote[/green] {result.path} and {result.archive}  ({m['model']['name']}, {m['backend']} "
              f"{m['precision']}, {b['platform']}, needs {needs})", highlight=False, soft_wrap=True)
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
        worst = f" (worst output {v['metrics']['output']})" if v["metrics"].get("outputs") else ""
        # the runner names itself (run.py, cpp/build/runner); the key's "(C++)" would say it twice
        verdict = "pass" if v["passed"] else "FAIL"
        cpu = f", CPU {v['device']['cpu']}" if "device" in v else ""
        out.print(f"golden check on {v.get('platform', where)} ({v['runner']}{cpu}): {verdict}, cosine "
                  f"{v['metrics']['cosine']:.6f}, max abs {v['metrics']['max_abs']:.2e}{worst}", highlight=False)
    if b.get("engine"):
        e = b["engine"]
        out.print(f"engine {e['file']} built on {e['built_on']}: valid for TensorRT {e['tensorrt']} on {e['gpu']} "
                  f"(compute capability {e['compute_capability']})", highlight=False)
    if b.get("signed_by"):
        out.print(f"signed with key {b['signed_by']}: manifest.json.sig", highlight=False)
    if "missing" in b.get("cpp", {}):
        out.print(f"[yellow]no C++ runner[/yellow]: {b['cpp']['missing']}", highlight=False)
    # a signed bundle is checked against the public key the user copies beside it, never one the bundle carries
    public = f" --public-key ../{api.PUBLIC_KEY}" if b.get("signed_by") else ""
    out.print(f"on the device: tar xzf {result.archive.name} && cd {result.path.name} && "
              f"pip install -r requirements.txt && python3 run.py --verify{public}"
              + (f"  (with the {api.PUBLIC_KEY} beside {sign_key.name} copied beside the archive)" if public else ""),
              highlight=False, soft_wrap=True)  # a command to copy must not wrap


@app.command(cls=_Command)
@_handle_errors
@grouped(platform=PlatformOptions, device=DeviceOptions, timing=(TimingOptions, "threads"))
def verify(path: Annotated[Optional[Path], typer.Argument(help="Bundle folder or .tar.gz (default: the newest "
                                                                 "in ./bundles).")] = None,
           public_key: Annotated[Optional[Path], typer.Option(
               "--public-key", help="Refuse the bundle unless its manifest is signed by this Ed25519 public key "
                                    "(PEM, from keygen).", metavar="PEM")] = None,
           as_json: Json = False, *, platform: PlatformOptions, device: DeviceOptions, timing: TimingOptions) -> None:
    """Check a bundle: its signature (--public-key), every file's checksum, then its own run.py --verify (golden
    outputs vs PyTorch's), here or on a device over SSH (--device), or on many (--devices)."""
    path = path or api.newest_bundle()
    if device.fleet:
        with _steps(f"verifying {path} on {device.devices}"):
            fleet = api.verify(path, threads=timing.threads, public_key=public_key, device=device, platform=platform)
        _end_fleet(fleet, as_json)
    with _steps(f"verifying {path}" + (f" on {device.device}" if device.device else "")):
        report = api.verify(path, platform=platform, threads=timing.threads, public_key=public_key, device=device)
    if as_json:
        _print_json(report.as_dict())
    else:
        m = report.metrics
        if report.signed_by:
            out.print(f"signature: manifest.json signed by key {report.signed_by}", highlight=False)
        out.print(f"integrity: {report.files_checked} files match manifest.json", highlight=False)
        for each in m.each():
            top = f", top-1 {each.top1:.2f}, top-5 {each.top5:.2f}" if each.top1 is not None else ""
            out.print(f"golden{'' if each.top1 is not None and not m.outputs else ' ' + each.output}: {'[green]PASS[/green]' if report.passed else '[red]FAIL[/red]'} on "
                      f"{each.samples} inputs with {report.runner} ({report.platform}): cosine {each.cosine:.6f}, "
                      f"max abs {each.max_abs:.2e}, rel {each.rel_max_abs:.2e}{top}", highlight=False)
        if device.device and report.device:
            d = report.device
            out.print(f"device: {d['device']}: bundle {'uploaded' if d['uploaded'] else 'already there'} "
                      f"({d['bundle']}), runtime {'created from ' + d['wheels'] if d['runtime_created'] else 'reused'} "
                      f"({d['python']}); "
                      + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in d["seconds"].items()),
                      highlight=False, soft_wrap=True)
    if not report.passed:
        remedy = f"; {report.remedy}" if report.remedy else ""
        raise ParityFailure(f"bundle {path} failed its golden check: {'; '.join(map(str, report.failed))}{remedy}")


def _end_fleet(fleet, as_json: bool) -> None:
    """A fleet's table (or JSON), then its exit code: 0 every device passed, 1 any failed, 2 none reached.
    Columns: what any device's result has (a verify's golden check and cosine, a profile's latency and
    temperature)."""
    if as_json:
        _print_json(fleet.as_dict())
        raise typer.Exit(fleet.exit_code)
    rows = [(o, _fleet_cells(o)) for o in fleet.outcomes]
    shown = [col for col in ("architecture", "runtime", "result", "cosine", "p50 ms", "p90 ms", "°C", "cached")
             if any(cells.get(col) for _, cells in rows)]
    table = Table(title=f"{fleet.what} {fleet.subject}", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("device", *shown, "why not"):
        table.add_column(col, justify="right" if col in ("cosine", "p50 ms", "p90 ms", "°C") else "left")
    for o, cells in rows:
        table.add_row(o.device, *(cells.get(col, "") for col in shown), cells.get("why not", ""))
    out.print(table)
    passed = sum(o.passed for o in fleet.outcomes)
    out.print(f"{passed} of {len(fleet.outcomes)} devices passed", highlight=False)
    raise typer.Exit(fleet.exit_code)


def _fleet_cells(o) -> dict:
    r = o.result
    if r is None:
        return {"result": "[red]unreachable[/red]" if not o.reached else "[red]error[/red]", "why not": o.error}
    if hasattr(r, "metrics"):  # a VerifyReport
        return {"architecture": r.platform, "runtime": r.runner.split(": ", 1)[-1].removesuffix(f" on {o.device}"),
                "result": "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]", "cosine": f"{r.metrics.cosine:.6f}",
                "why not": "; ".join(map(str, r.failed))}
    after = (r.state or {}).get("after") or {}  # a DeviceProfile
    return {"architecture": r.machine, "runtime": f"{r.runner['runtime']} {r.runner['version']}",
            "result": "[green]timed[/green]", "p50 ms": f"{r.latency.p50_ms:.3f}", "p90 ms": f"{r.latency.p90_ms:.3f}",
            "°C": f"{after['temperature_c']:.0f}" if after.get("temperature_c") is not None else "",
            "cached": r.cached or "", "why not": "; ".join(r.warnings)}


@app.command(cls=_Command)
@_handle_errors
def keygen(out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for signing.pem (private, mode 600) "
                                                                     "and signing.pub.pem.", metavar="DIR")] = Path("keys")
           ) -> None:
    """Make an Ed25519 key pair for signing bundles (bundle --sign-key) and checking them (verify --public-key)."""
    private, public, fingerprint = api.keygen(out_dir)
    out.print(f"wrote {private} (private: keep it off devices) and {public} (public: give it to devices); "
              f"key {fingerprint}", highlight=False)


@app.command(cls=_Command)
@_handle_errors
@grouped(model=ModelOptions, int8_options=(Int8Options, "calib", "calib_size", "min_cosine", "quantize_classifier"),
         trt=TrtOptions, timing=(TimingOptions, "threads", "warmup", "iters"), platform=PlatformOptions,
         device=DeviceOptions, build=BuildOptions)
def optimize(min_cosine: Annotated[Optional[float], typer.Option(
                 "--min-cosine", help="Budget: worst per-photo cosine to PyTorch (default 0.99).", metavar="COS")] = None,
             max_top1_drop: Annotated[Optional[float], typer.Option(
                 "--max-top1-drop", help="Budget instead: percent of photos whose top-1 class may differ from "
                                         "PyTorch's.", metavar="PCT")] = None,
             targets: Annotated[Optional[list[str]], typer.Option(
                 "--targets", help="Backends to try, repeated or comma-separated (default: ort, openvino, trt; a "
                                   "backend that cannot run here is listed as skipped).", metavar="T,T")] = None,
             precisions: Annotated[Optional[list[str]], typer.Option(
                 "--precisions", help="Precisions to try (default: fp32, fp16, int8, leaving out those a runtime "
                                      "cannot win with on this CPU, said in the report).", metavar="P,P")] = None,
             calib_methods: Annotated[Optional[list[str]], typer.Option(
                 "--calib-methods", help="INT8 calibration methods to try where the graph is quantized (default: "
                                         "percentile, entropy).", metavar="M,M")] = None,
             batch: Batch = 1, images: Images = None,
             out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the report and the "
                                                                                  "winner's bundle.", metavar="DIR")] = None,
             make_bundle: Annotated[bool, typer.Option("--bundle/--no-bundle", help="Write the winner as a "
                                                                                    "bundle.", metavar="")] = True,
             models: Annotated[Optional[list[str]], typer.Option(
                 "--models", help="Sweep several models under the same budget instead of --model, repeated or "
                                  "comma-separated: NAME, or NAME=WEIGHTS (see `models`); each gets its folder, "
                                  "with the Pareto front across them.", metavar="M,M")] = None,
             pick: Annotated[str, typer.Option(
                 "--pick", help="Over several devices: each-device bundles every device's winner for it; "
                                "slowest-device bundles only the one artifact fastest where it is slowest.",
                 metavar="each-device|slowest-device")] = "each-device",
             labels: Labels = None, as_json: Json = False, *, model: ModelOptions, int8_options: Int8Options,
             trt: TrtOptions,
             timing: TimingOptions, platform: PlatformOptions, device: DeviceOptions, build: BuildOptions) -> None:
    """The fastest artifact within an accuracy budget: search, report, bundle; with --device, timed on that
    device and the fastest there wins; with several (--device again, --devices), on each: every device's winner
    and the one fastest where it is slowest. Candidates are built on a local Dask cluster (or --cluster), then
    timed here in turns; --models sweeps several models."""
    swept = _listed(models)
    with _steps(f"searching {', '.join(swept) if swept is not None else model.model}"):
        result, folder = api.optimize(
            model, min_cosine=min_cosine, max_top1_drop=max_top1_drop, targets=_listed(targets),
            precisions=_listed(precisions),
            calib_methods=_listed(calib_methods) or ("percentile", "entropy"), batch=batch, images=images,
            out=out_dir, make_bundle=make_bundle, int8=int8_options, trt=trt, timing=timing, platform=platform,
            labels=labels, device=device, build=build, models=swept, pick=pick)
    if swept is not None:
        return _print_sweep(result, folder, as_json)
    _print_search(result, folder, as_json)
    if result.fleet:  # as every fleet command: 0 each device has its winner, 2 none was reached, else 1
        won = sum(d.get("winner") is not None and not d.get("bundle_error") for d in result.fleet)
        if not as_json:
            out.print(f"{won} of {len(result.fleet)} devices have a winner", highlight=False)
        raise typer.Exit(0 if won == len(result.fleet) else 2 if not any(d["reached"] for d in result.fleet) else 1)
    if result.best is None:
        raise ParityFailure(result.note or "no candidate met the budget")


def _print_sweep(swept, folder: Path, as_json: bool) -> None:
    if as_json:
        _print_json({"folder": str(folder), **swept.as_dict()})
    else:
        for result, sub in zip(swept.results, swept.folders):
            _print_search(result, folder / sub, False)
        table = Table(title="Pareto front across models: latency against cosine to PyTorch", box=box.SIMPLE_HEAD)
        for col in ("model", "candidate", "p50 ms", "cosine", "its model's winner"):
            table.add_column(col, justify="right" if col in ("p50 ms", "cosine") else "left")
        for p in swept.front:
            table.add_row(p.model, p.candidate, f"{p.p50_ms:.3f}", f"{p.cosine:.6f}", "yes" if p.winner else "")
        out.print(table)
        out.print(f"sweep: {folder / 'sweep.md'}", highlight=False)
    if not any(r.best for r in swept.results):
        raise ParityFailure("no candidate of any model met the budget")


@app.command(cls=_Command)
@_handle_errors
def report(results: Annotated[Optional[Path], typer.Argument(help="results.json of an earlier optimize run "
                                                                  "(default: the newest under ./optimized).")] = None,
           out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for report.md / report.html "
                                                                                "(default: beside RESULTS).",
                                                           metavar="DIR")] = None,
           as_json: Json = False) -> None:
    """Markdown and self-contained HTML report of an optimize run's candidates (it never starts a search)."""
    result, folder = api.report(results, out_dir)
    _print_search(result, folder, as_json)


@app.command(cls=_Command)
@_handle_errors
def results(model: Annotated[Optional[str], typer.Option("--model", "-m", help="Only this model's timings.",
                                                         metavar="NAME")] = None,
            device: Annotated[Optional[str], typer.Option("--device", help="Only this device's (its name, or the "
                                                          "start of its fingerprint).", metavar="DEST")] = None,
            precision: Annotated[Optional[str], typer.Option(help="Only fp32, fp16 or int8.", metavar="P")] = None,
            target: Annotated[Optional[str], typer.Option("--target", "-t", help="Only this runtime's.",
                                                          metavar="TARGET")] = None,
            as_json: Json = False) -> None:
    """Every timing of a bundle on a device so far, newest first, from the results store (a SQLite file:
    UNINEXT_RESULTS, else ~/.local/share/uninext-deploy/results.sqlite); profiling the same bundle on the same
    device again reuses its row unless --fresh."""
    rows, where = api.results(model=model, device=device, precision=precision, target=target)
    if as_json:
        return _print_json({"store": str(where), "timings": rows})
    table = Table(title=f"timings in {where}", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("measured (UTC)", "model", "runtime", "precision", "batch", "device", "architecture", "p50 ms",
                "p90 ms", "°C", "bundle"):
        table.add_column(col, justify="right" if col in ("batch", "p50 ms", "p90 ms", "°C") else "left")
    for r in rows:
        table.add_row(r["measured_at"].replace("T", " ").removesuffix("+00:00"), r["model"],
                      r["runtime"] or r["target"], r["precision"], str(r["batch"]), r["device"], r["machine"] or "", f"{r['p50_ms']:.3f}",
                      f"{r['p90_ms']:.3f}", "" if r["temperature_c"] is None else f"{r['temperature_c']:.0f}",
                      r["bundle_sha256"][:12])
    out.print(table)
    out.print(f"{len(rows)} timings" + ("" if rows else ": `uninext-deploy profile --device DEST` adds them"),
              highlight=False)


def _print_search(result, folder: Path, as_json: bool) -> None:
    if as_json:
        return _print_json({"folder": str(folder), **result.as_dict()})
    table = Table(title=f"{result.model} {result.input_shape}, {result.threads} threads: candidates vs PyTorch eager "
                        f"p50 {result.eager.p50_ms:.2f} ms", box=box.SIMPLE_HEAD)
    titles, candidates = api.candidate_table(result)
    for i, title in enumerate(titles):
        table.add_column(title, justify="left" if i == 0 else "right")
    colours = {"WINNER": "green", "fail": "red", "error": "red", "skipped": "yellow"}
    for row in candidates:
        cells = list(row["cells"])
        if row["verdict"] in colours:
            cells[-1] = f"[{colours[row['verdict']]}]{cells[-1]}[/{colours[row['verdict']]}]"
        table.add_row(*cells)
    out.print(table)
    for row in candidates:
        if row["why"]:
            out.print(f"{row['candidate']}: {row['why']}", highlight=False)
    if result.class_change:
        out.print(f"[yellow]note:[/yellow] {result.class_change}", highlight=False)
    devices = api.device_table(result)
    if devices:
        fleet = Table(title=f"on each device (best where it is slowest: {result.best.name if result.best else 'none'})",
                      box=box.SIMPLE_HEAD)
        for col in ("device", "architecture", "its winner", "p50 ms there", "°C", "bundle", "why not"):
            fleet.add_column(col, justify="right" if col in ("p50 ms there", "°C") else "left")
        for r in devices:
            fleet.add_row(r["device"], r["architecture"], r["winner"], "" if r["p50"] is None else f"{r['p50']:.2f}",
                          "" if r["temperature"] is None else f"{r['temperature']:.0f}", r["bundle"], r["why"])
        out.print(fleet)
    out.print(f"report: {folder / 'report.html'}  {folder / 'report.md'}", highlight=False)
    if result.bundle:
        out.print(f"bundle: {folder / result.bundle}  {folder / (result.bundle + '.tar.gz')}", highlight=False)


@app.command(cls=_Command)
@_handle_errors
@grouped(device=DeviceOptions)
def doctor(as_json: Json = False, *, device: DeviceOptions) -> None:
    """Runtime versions (with install hints), CPU features and GPUs of this machine, or of a device (--device)."""
    info = api.doctor(device)
    if as_json:
        return _print_json(info)
    if device.device:
        return _print_device(device.device, info)
    out.print(f"{info['platform']}, Python {info['python']}, {info['cpu']} ({info['cores']} cores)")
    out.print(f"CPU features: {', '.join(info['cpu_flags']) or 'none detected'}")
    out.print("INT8 exports: " + ("7-bit weights (no VNNI: 8-bit ones saturate this CPU's INT8 dot products)"
                                  if info["int8_weight_bits"] == 7 else "8-bit weights"))
    out.print(f"GPUs: {', '.join(info['gpus']) or 'none'}")
    for backend, notes in info["precisions"].items():
        for note in notes:
            out.print(f"{backend}: {note}", highlight=False)
    table = Table()
    table.add_column("package")
    table.add_column("version")
    table.add_column("install")
    for name, p in info["packages"].items():
        table.add_row(name, p["version"] or "[yellow]missing[/yellow]", p["hint"] or "")
    out.print(table)
    for warning in info["warnings"]:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)


def _print_device(name: str, info: dict) -> None:
    out.print(f"{name}: {info['system']} {info['machine']}, Python {info['python']} ({info['python_path']}), "
              f"{info['cpu']} ({info['cores']} cores)", highlight=False, soft_wrap=True)
    out.print(f"CPU features: {', '.join(info['cpu_flags']) or 'none detected'}", highlight=False)
    out.print(f"memory: {info['memory_available_mb']} MB free of {info['memory_total_mb']} MB; disk: "
              f"{info['disk_free_mb']} MB free in {info['home']}", highlight=False)
    out.print(f"board: {info['board'] or 'not named'}" + (f", {info['jetson_l4t']}" if info["jetson_l4t"] else ""),
              highlight=False)
    out.print(f"GPUs: {', '.join(info['gpus']) or 'none'}; TensorRT: {info['tensorrt'] or 'none'}", highlight=False)
    out.print("packages (its python3): " + ", ".join(f"{name} {version or 'missing'}"
                                                      for name, version in info["packages"].items()),
              highlight=False, soft_wrap=True)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def _joined_sizes(argv: list[str]) -> list[str]:
    """``--input-size 224 192`` (the two-number form) as ``--input-size 224x192``."""
    joined, i = [], 0
    while i < len(argv):
        if argv[i] == "--input-size" and i + 2 < len(argv) and argv[i + 1].isdigit() and argv[i + 2].isdigit():
            joined += [argv[i], f"{argv[i + 1]}x{argv[i + 2]}"]
            i += 3
            continue
        joined.append(argv[i])
        i += 1
    return joined


def main() -> None:
    """The command line: our errors and the parser's (an unknown option, a value that is not a number) are one
    line on stderr with exit code 2, never a traceback or a framed panel."""
    from typer._click.exceptions import ClickException  # typer vendors click; pinned in constraints.txt

    warnings.formatwarning = _one_line_warning
    args = _joined_sizes(sys.argv[1:])
    try:
        code = typer.main.get_command(app).main(args=args, prog_name="uninext-deploy", standalone_mode=False)
    except ClickException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            app(args=["--help"], prog_name="uninext-deploy")
        context = getattr(exc, "ctx", None)
        command = context.command_path if context is not None else "uninext-deploy"
        name = getattr(exc, "option_name", None)  # click's NoSuchOption: its guesses are by spelling alone
        message = f"no such option {name}: {MISTAKEN[name]}" if name in MISTAKEN else exc.format_message()
        err.print(f"[red]error:[/red] {message}; see {command} --help", highlight=False, soft_wrap=True)
        code = exc.exit_code
    except typer.Abort:
        err.print("interrupted; nothing half-written was left behind")
        code = 130
    sys.exit(code or 0)


if __name__ == "__main__":
    sys.exit(main())
