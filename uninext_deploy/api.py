"""The Python API, which the CLI (cli.py) mirrors command for command: the CLI imports nothing else.

Every function runs on embedded defaults (UniNeXt-T, seeded weights, shipped photos). Options come as the
same groups the CLI's flags form (:mod:`uninext_deploy.options`), validated there, so a Python caller gets
the same one-line errors. Heavy modules (torch, the runtimes) are imported only when a function needs
them, so ``--help``, ``models`` (cached) and ``doctor`` start at once. Long steps announce themselves
(:mod:`uninext_deploy.console.progress`) and show nothing unless the caller installs a reporter, e.g.
``with progress.reporting(LineReporter()): api.bundle()`` (``console.reporters``), as the CLI does.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from . import __version__
from .backends.registry import canonical_target
from .device.signature import PUBLIC_KEY
from .errors import ParityFailure, UserError
from .options import (DEFAULT_MODEL, DEFAULT_TARGET, PRECISIONS, BuildOptions, DeviceOptions, Inputs, Int8Options,
                      ModelOptions, PlatformOptions, TimingOptions, TrtOptions, check_threads)

if TYPE_CHECKING:
    from .artifact import Artifact
    from .bundle import Bundle
    from .parity import ParityReport
    from .profile import DeviceProfile, ProfileReport
    from .devices.fleet import FleetRun
    from .results import OptimizeResult
    from .sweep.pareto import Sweep
    from .verify import VerifyReport

__all__ = ["DEFAULT_MODEL", "DEFAULT_TARGET", "PRECISIONS", "BuildOptions", "DeviceOptions", "Inputs", "Int8Options",
           "ModelOptions", "PlatformOptions", "TimingOptions", "TrtOptions", "UserError", "ParityFailure",
           "__version__", "export", "parity", "profile", "bundle", "verify", "optimize", "report", "results",
           "models_table", "doctor", "describe", "default_targets", "newest_bundle", "gated_inputs", "bounds_text",
           "candidate_table", "device_table", "requirement_text", "canonical_target", "PUBLIC_KEY"]


def _model(model: str | ModelOptions, input_size=None, weights=None, seed: int = 0) -> ModelOptions:
    if isinstance(model, ModelOptions):
        if input_size is not None or weights is not None or seed:
            raise UserError("pass input_size, weights and seed inside the ModelOptions, not beside it")
        return model
    return ModelOptions(model, input_size, weights, seed)


def export(model: str | ModelOptions = DEFAULT_MODEL, target: str = DEFAULT_TARGET, *, precision: str = "fp32",
           batch: int = 1, input_size=None, weights=None, seed: int = 0, out: str | Path | None = None,
           opset: int | None = None, simplify: bool = True, int8: Int8Options | None = None,
           trt: TrtOptions | None = None) -> "Artifact":
    """Export ``model`` to ``target`` at a static ``batch`` and write the artifact folder (atomically)."""
    from .pipeline import export as run

    return run(_model(model, input_size, weights, seed), target, precision=precision, batch=batch, out=out,
               opset=opset, simplify=simplify, int8=int8, trt=trt)


@contextmanager
def _existing(path: str | Path) -> Iterator["Artifact"]:
    """The artifact or bundle at ``path`` (a folder, or a bundle archive unpacked safely)."""
    from .archive import opened
    from .artifact import Artifact
    from .device.integrity import IntegrityError, check_files

    with opened(path) as folder:
        artifact = Artifact.open(folder)
        try:
            check_files(artifact.path, artifact.manifest)
        except IntegrityError as exc:
            raise UserError(f"integrity check failed: {exc}") from None
        yield artifact


def parity(model: str | ModelOptions = DEFAULT_MODEL, target: str = DEFAULT_TARGET, *, precision: str = "fp32",
           batches: tuple[int, ...] = (1, 2), input_size=None, weights=None, seed: int = 0,
           inputs: Inputs = Inputs(), out: str | Path | None = None, threads: int | None = None,
           int8: Int8Options | None = None, trt: TrtOptions | None = None,
           platform: PlatformOptions = PlatformOptions(), artifact: str | Path | None = None,
           device: str | DeviceOptions | None = None) -> "ParityReport":
    """Compare ``model`` exported at each of ``batches`` with PyTorch on the same inputs, or, with
    ``artifact`` (an artifact or bundle folder or archive), that artifact as it is. With an ARM ``platform``
    every artifact also runs on the emulated aarch64 CPU; with ``device``, on that device too (packaged as its
    bundle, whose run.py runs there), compared with PyTorch and with this machine's run."""
    from . import parity as harness
    from .arm.run import runtime_for
    from .bundle import device_parity
    from .devices import emulated_device, open_device

    check_threads(threads)
    device = _device(device, one="parity")
    with open_device(device.device, accept_new_host_key=device.accept_new_host_key, timeout=device.timeout) as place, \
            (_existing(artifact) if artifact is not None else nullcontext()) as found:
        if platform.arm:  # an impossible combination is refused before anything is exported
            runtime_for(found.backend if found else canonical_target(target), found.precision if found else precision,
                        platform.cpu)
        # the emulated CPU and a board are two devices, checked the same way (the bundle's run.py there)
        on_devices = ([device_parity(emulated_device(platform.cpu, platform.arm_cache), into="arm")] if platform.arm
                      else []) + ([device_parity(place)] if device.device is not None else [])
        if found is not None:
            return harness.parity_of(found, inputs=inputs, threads=threads, on_devices=on_devices)
        return harness.parity(_model(model, input_size, weights, seed), target, precision=precision,
                              batches=tuple(batches), inputs=inputs, out=out, threads=threads, int8=int8, trt=trt,
                              on_devices=on_devices)


def profile(model: str | ModelOptions = DEFAULT_MODEL, target: str = DEFAULT_TARGET, *, precision: str = "fp32",
            batch: int = 1, input_size=None, weights=None, seed: int = 0, timing: TimingOptions = TimingOptions(),
            per_layer: bool = False, eager: bool = True, out: str | Path | None = None,
            int8: Int8Options | None = None, trt: TrtOptions | None = None,
            artifact: str | Path | None = None, device: str | DeviceOptions | None = None,
            public_key: str | Path | None = None) -> "ProfileReport | DeviceProfile | FleetRun":
    """Latency of the ``target`` artifact (or of ``artifact`` as it is) and of PyTorch eager, in one run; with
    ``device``, of the bundle ``artifact`` (or one made of the model for the device's platform) on that device,
    by its own run.py (a :class:`DeviceProfile`, from the results store where timed so before: --fresh times
    again); on several devices, on every one in parallel (a :class:`FleetRun` of them)."""
    from . import profile as harness

    device = _device(device)
    on_device = device.device is not None or device.fleet
    if not on_device and public_key is not None:
        raise UserError("--public-key checks a bundle on a device; add --device DEST (here, `verify` checks it)")
    if on_device and per_layer:
        raise UserError("--per-layer times layers here only (run.py --bench times the whole model); drop "
                        "--per-layer or --device")
    if on_device:
        from .devices import fleet, open_device

        with (_existing(artifact) if artifact is not None else nullcontext()) as found, \
                tempfile.TemporaryDirectory(prefix="uninext-profile-") as root:
            # with no bundle given, one is made for each platform the devices are (once, as the first needs it)
            bundle_for = _bundles_for(model, target, precision, batch, input_size, weights, seed, Path(out or root),
                                      int8, trt)

            def on(place):
                return harness.profile_on(place, found or bundle_for(place), timing, public_key)

            if device.fleet:
                subject = str(artifact) if artifact else _model(model, input_size, weights, seed).model
                return fleet.run("profile", subject, device.devices, on, timeout=device.timeout,
                                 accept_new_host_key=device.accept_new_host_key)
            with open_device(device.device, accept_new_host_key=device.accept_new_host_key,
                             timeout=device.timeout) as place:
                return on(place)
    if artifact is not None:
        with _existing(artifact) as found:
            return harness.profile_of(found, timing=timing, per_layer=per_layer, eager=eager)
    return harness.profile(_model(model, input_size, weights, seed), target, precision=precision, batch=batch,
                           timing=timing, per_layer=per_layer, eager=eager, out=out, int8=int8, trt=trt)


def _bundles_for(model, target, precision, batch, input_size, weights, seed, root: Path, int8, trt):
    """``bundle_for(device)``: the model's bundle for the device's platform, made under ``root`` the first time a
    device of that platform asks (the fleet's threads wait for it, not make it twice)."""
    import threading

    from .artifact import Artifact
    from .devices import platform_of

    made, lock = {}, threading.Lock()

    def bundle_for(place) -> "Artifact":
        wanted = platform_of(place.describe()["machine"])
        with lock:
            if wanted not in made:
                made[wanted] = Artifact.open(bundle(
                    model, target, precision=precision, batch=batch, input_size=input_size, weights=weights,
                    seed=seed, out=root / f"bundle-{wanted.replace('/', '-')}", int8=int8, trt=trt,
                    platform=PlatformOptions(wanted)).path)
        return made[wanted]
    return bundle_for


def bundle(model: str | ModelOptions = DEFAULT_MODEL, target: str = DEFAULT_TARGET, *, precision: str = "fp32",
           platform: PlatformOptions = PlatformOptions(), batch: int = 1, input_size=None, weights=None,
           seed: int = 0, out: str | Path | None = None, threads: int | None = None,
           int8: Int8Options | None = None, trt: TrtOptions | None = None, labels: str | Path | None = None,
           cpp: bool = False, sign_key: str | Path | None = None,
           device: str | DeviceOptions | None = None, fetch_engine: bool = False) -> "Bundle":
    """Export, prove and package ``model`` for the device: ``out``/ and ``out``.tar.gz. ``labels``: a file of
    class names for a fine-tuned classifier (default: ImageNet's for 1000 classes, else numbered); ``cpp``:
    add the C++ runner, built and verified here like run.py; ``sign_key``: sign the manifest with this Ed25519
    private key (PEM, from :func:`keygen`); ``device``: also prove it on that device (its run.py --verify);
    ``fetch_engine``: bring the engine that device built (TensorRT) back into the bundle."""
    from .bundle import bundle as run

    check_threads(threads)
    return run(_model(model, input_size, weights, seed), target, precision=precision, platform=platform,
               batch=batch, out=out, threads=threads, int8=int8, trt=trt, labels=labels, cpp=cpp,
               sign_key=sign_key, device=_device(device, one="bundle"), fetch_engine=fetch_engine)


def newest_bundle(folder: str | Path = "bundles") -> Path:
    from .verify import newest_bundle as newest

    return newest(Path(folder))


def _device(device: str | list[str] | DeviceOptions | None, one: str | None = None) -> DeviceOptions:
    """DEST, several DESTs (a fleet) or the options themselves; ``one``: the command, which takes one device."""
    device = device if isinstance(device, DeviceOptions) else DeviceOptions(device)
    if one is not None and device.fleet:
        raise UserError(f"{one} runs on one device at a time; give --device once (verify, profile and optimize "
                        "take several devices or --devices)")
    return device


def verify(path: str | Path | None = None, *, platform: PlatformOptions = PlatformOptions(),
           threads: int | None = None, public_key: str | Path | None = None,
           device: str | DeviceOptions | None = None) -> "VerifyReport | FleetRun":
    """Check a bundle folder or archive (default: the newest in ./bundles): with ``public_key``, its
    signature first (unsigned or otherwise signed bundles are refused); checksums, then its golden outputs,
    here or (``device``: DEST or DeviceOptions) by its run.py on that device over SSH, the bundle and its
    runtime set up there once and reused. With several devices (``DeviceOptions(devices=...)``: an inventory
    ``FILE.yml[:GROUP]`` or ``DEST,DEST``), on every one in parallel (a :class:`FleetRun`)."""
    from .verify import verify as run, verify_fleet

    check_threads(threads)
    device = _device(device)
    _on_devices_only(device, platform)
    if device.fleet:
        return verify_fleet(path or newest_bundle(), threads=threads, public_key=public_key, device=device)
    return run(path or newest_bundle(), platform=platform, threads=threads, public_key=public_key, device=device)


def _on_devices_only(device: DeviceOptions, platform: PlatformOptions) -> None:
    """A bundle run on devices needs no emulated CPU here: --platform with --device is refused."""
    if (device.device is not None or device.fleet) and platform.platform != "host":
        raise UserError(f"--device runs the bundle on {device.device or 'the devices'} itself; drop --platform (it "
                        "picks an emulated CPU here)")


def keygen(out: str | Path = "keys") -> tuple[Path, Path, str]:
    """A new Ed25519 key pair for signing bundles: (private key, public key, fingerprint); never overwrites."""
    from .device.signature import SignatureError, keygen as make

    try:
        return make(Path(out))
    except SignatureError as exc:
        raise UserError(str(exc)) from None


def default_targets() -> tuple[str, ...]:
    from .backends import BACKENDS

    return BACKENDS


def optimize(model: str | ModelOptions = DEFAULT_MODEL, *, input_size=None, weights=None, seed: int = 0,
             min_cosine: float | None = None, max_top1_drop: float | None = None, targets=None,
             precisions=None, calib_methods=("percentile", "entropy"), batch: int = 1,
             images: str | Path | None = None, out: str | Path | None = None, make_bundle: bool = True,
             int8: Int8Options = Int8Options(), trt: TrtOptions = TrtOptions(),
             timing: TimingOptions = TimingOptions(), platform: PlatformOptions = PlatformOptions(),
             labels: str | Path | None = None, device: str | DeviceOptions | None = None,
             build: BuildOptions = BuildOptions(), models: list[str | ModelOptions] | None = None,
             pick: str = "each-device") -> tuple["OptimizeResult | Sweep", Path]:
    """The fastest artifact within a budget (cosine or top-1 drop vs PyTorch on the photos): search, race,
    report and bundle. With ``device``, every candidate is timed there too and the fastest there wins. ``build``:
    where candidates are built (a local Dask cluster by default; ``BuildOptions(workers=0)``: here, one after
    another; ``cluster``: a scheduler's address) and whether an interrupted run is resumed. ``models``: several
    models under the same budget instead of ``model`` (``NAME`` or ``NAME=WEIGHTS`` each, with ``model``'s input
    size, seed and features; or ModelOptions), each reported in its own folder, with the Pareto front across them
    (a :class:`Sweep`). With several devices (a fleet), every candidate is timed on each; each device's winner is
    reported and (``pick`` "each-device") bundled for it, or (``pick`` "slowest-device") only the one artifact
    that is fastest where it is slowest. Returns the result and its folder."""
    from .arm.platforms import bundle_platform
    from .devices import of_platform, open_device
    from .optimize import sweep

    device = _device(device)
    if device.fleet and platform.platform != "host":
        raise UserError("--devices bundles each winner for its device's own platform; drop --platform")
    base = _model(model, input_size, weights, seed)
    swept = _models(models, base) if models is not None else [base]
    with open_device(device.device, accept_new_host_key=device.accept_new_host_key, timeout=device.timeout) as place:
        probed = (place, of_platform(place, bundle_platform(platform.platform))) if device.device else None
        found, folder = sweep(swept, min_cosine=min_cosine, max_top1_drop=max_top1_drop,
                              targets=tuple(targets or default_targets()),
                              precisions=tuple(precisions) if precisions is not None else None,
                              calib_methods=tuple(calib_methods), batch=batch, images=images, out=out,
                              make_bundle=make_bundle, int8=int8, trt=trt, timing=timing, platform=platform,
                              labels=labels, device=probed, fleet=device if device.fleet else None, pick=pick,
                              build=build)
    return (found if models is not None else found.results[0]), folder


def _models(models: list[str | ModelOptions], base: ModelOptions) -> list[ModelOptions]:
    """``NAME`` or ``NAME=WEIGHTS`` each, built like ``base`` (its input size, seed, features, classes)."""
    from dataclasses import replace

    if not models:
        raise UserError("--models names no model; give registered names separated by commas, e.g. "
                        "uninext_t,convmlp_s (see `models`)")
    if base.model != DEFAULT_MODEL or base.weights is not None:
        raise UserError("--models replaces --model and --weights: give each model's weights as NAME=WEIGHTS, "
                        "e.g. --models uninext_t=in1k,convmlp_s=in1k")
    built = []
    for item in models:
        if isinstance(item, ModelOptions):
            built.append(item)
            continue
        name, _, checkpoint = item.strip().partition("=")
        built.append(replace(base, model=name.strip(), weights=checkpoint.strip() or None))
    return built


def report(results: str | Path | None = None, out: str | Path | None = None) -> tuple["OptimizeResult", Path]:
    """Re-render report.md, report.html and the plots of an earlier optimize run's results.json (None: the
    newest under ./optimized). It never starts a search: without results it says how to make them."""
    from .report import write_report
    from .results import RESULTS, OptimizeResult

    if results is None:
        found = sorted(Path("optimized").glob(f"*/{RESULTS}"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise UserError(f"no {RESULTS} under ./optimized to report on; run `uninext-deploy optimize` first, "
                            f"or pass the {RESULTS} of an earlier run")
        results = found[-1]
    result = OptimizeResult.load(results)
    folder = Path(out) if out is not None else Path(results).parent
    folder.mkdir(parents=True, exist_ok=True)
    write_report(result, folder)
    return result, folder


def results(model: str | None = None, device: str | None = None, precision: str | None = None,
            target: str | None = None) -> tuple[list[dict], Path]:
    """The timings in the results store, newest first, of ``model``, ``device`` (name or fingerprint prefix),
    ``precision`` and ``target`` where given; and the store's path."""
    from .results import store

    if precision is not None and precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r} is none of {', '.join(PRECISIONS)}")
    target = canonical_target(target) if target is not None else None
    return store.query(model=model, device=device, precision=precision, target=target), store.path()


def models_table(family: str | None = None) -> list[dict]:
    """One row per registered variant: measured params and GMACs next to the official values."""
    from .model_table import rows

    return rows(family)


def doctor(device: str | DeviceOptions | None = None) -> dict:
    """Runtime versions (with install hints), CPU features and GPUs of this machine, or (``device``) what that
    device has: architecture, Python, CPU, memory and disk free, runtimes, GPU / Jetson and TensorRT."""
    from .doctor import report as run

    device = _device(device, one="doctor")
    if device.device is None:
        return run()
    from .devices import open_device

    with open_device(device.device, accept_new_host_key=device.accept_new_host_key,
                     timeout=device.timeout) as place:
        return place.describe()


def requirement_text(requirement: dict) -> str:
    """A runtime requirement as pip writes it, e.g. "onnxruntime>=1.17,<2"."""
    from .device.runtimes import spec

    return spec(requirement)


def gated_inputs(precision: str) -> tuple[str, ...]:
    """The input sets whose metrics must meet the tolerance at ``precision`` (the others are reported)."""
    from .device.compare import GATED_INPUTS

    return GATED_INPUTS[precision]


def bounds_text(tolerance: dict) -> str:
    from .device.compare import bounds_text as text

    return text(tolerance)


def candidate_table(result: "OptimizeResult") -> tuple[list[str], list[dict]]:
    """The column titles and rows ({"cells", "verdict", "why", ...}) both reports and the CLI show."""
    from .report import cell, columns, rows

    table = rows(result)
    for row in table:
        row["cells"] = [cell(row, key, spec) for _, key, spec in columns(result)]
    return [title for title, _, _ in columns(result)], table


def device_table(result: "OptimizeResult") -> list[dict]:
    """Over a fleet, a row per device ({"device", "architecture", "cpu", "winner", "p50", "temperature", "bundle",
    "why"}), as both reports show it; empty otherwise."""
    from .report import fleet_rows

    return fleet_rows(result)


def describe(artifact: "Artifact") -> list[str]:
    """What the backend says about an exported artifact's precision graph and compile step."""
    from .backends import get_backend

    return get_backend(artifact.backend).describe(artifact.manifest.get("precision_graph") or {})
