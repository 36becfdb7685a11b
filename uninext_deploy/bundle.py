"""Embedded runtime bundles: what a user copies to the device, proven before it leaves the host.

A bundle is an artifact folder cut down to what the device runs (the backend's ``device_roles``), plus
golden inputs and PyTorch outputs (every output: logits or feature maps), class labels for a classifier
(ImageNet's, the user's ``--labels`` file, or numbered), a torch-free runner (``run.py`` and the standalone
modules of :mod:`uninext_deploy.device`), ``requirements.txt`` and a README, all listed with their
sha256 in ``manifest.json``; and the same folder as a ``.tar.gz``. Both are written atomically.

Before a bundle is written, the artifact passes parity against PyTorch and the staged bundle passes its
own ``run.py --verify`` on this machine, and for ``linux/arm64`` also under the emulated aarch64 CPU: the
code that was proven is the code that ships.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cpp_runner
from .archive import write_archive
from .arm.platforms import bundle_platform, emulated, host_platform
from .artifact import GOLDEN, Artifact, atomic_folder, check_output_path, write_manifest
from .backends import canonical_target, get_backend, graph_requirement
from .console import progress
from .device.compare import GATED_INPUTS, TOLERANCES, bounds_text, compare, failures, golden_outputs, run_batched, write_golden
from .device import signature
from .device.runtimes import RUNNER_PACKAGES, spec
from .device.integrity import read_manifest
from .errors import ParityFailure, UserError
from .models.published import lookup
from .devices import Device, of_platform, open_device, report_of, run_bundle
from .options import (DEFAULT_TARGET, DeviceOptions, Int8Options, ModelOptions, PlatformOptions, TrtOptions,
                      check_batch)
from .parity import ParityReport, ParityRun, parity, runner_for
from .pipeline import default_out as artifact_out, model_tag
from .verify import run_verify

DEVICE = Path(__file__).parent / "device"
# bundle file name -> source; run.py imports the others as plain modules
RUNNER_FILES = {name: DEVICE / name for name in
                ("run.py", "runtimes.py", "imaging.py", "integrity.py", "compare.py", "timing.py", "signature.py",
                 "state.py")}
LABELS = Path(__file__).parent / "data" / "imagenet_labels.txt"


@dataclass
class Bundle:
    path: Path
    archive: Path
    manifest: dict

    def sizes(self) -> list[tuple[str, str, int]]:
        """(file, role, bytes) of every file, largest first; the C++ runner's sources and headers as one row."""
        files = self.manifest["files"].items()
        rows = [(name, e["role"], e["bytes"]) for name, e in files if e["role"] != "cpp"]
        cpp = [e["bytes"] for _, e in files if e["role"] == "cpp"]
        if cpp:
            rows.append((f"{cpp_runner.FOLDER}/ ({len(cpp)} files)", "cpp", sum(cpp)))
        return sorted(rows, key=lambda row: -row[2])


def default_out(artifact: Artifact, platform: str) -> Path:
    """bundles/<model tag>-<target>-<precision>-b<batch>-<H>x<W>-<os>-<arch> (see pipeline.model_tag)"""
    batch, _, h, w = artifact.input_shape
    m = artifact.manifest["model"]
    name = artifact_out(model_tag(m["name"], m.get("features"), m.get("num_classes")), artifact.manifest["target"],
                        artifact.precision, batch, h, w).name
    return Path("bundles") / f"{name}-{platform.replace('/', '-')}"


def read_labels(path: str | Path | None, model: ModelOptions) -> list[str] | None:
    """The class names of ``path`` (one per line) checked against ``model``'s classes, or None (the default
    labels). A feature model has no classes; a file of another length is one UserError."""
    if path is None:
        return None
    if model.features is not None:
        raise UserError("--labels names the classes of a classifier; a --features bundle has none, drop --labels")
    path = Path(path)
    try:
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read --labels {path}: {getattr(exc, 'strerror', None) or exc}; pass a UTF-8 text "
                        "file with one class name per line") from None
    classes = expected_classes(model)
    if len(labels) != classes:
        raise UserError(f"--labels {path} names {len(labels)} classes but the model has {classes}; give one "
                        "non-empty line per class, in class order")
    return labels


def expected_classes(model: ModelOptions) -> int:
    """How many classes ``model`` will have: --num-classes, else its checkpoint's, else 1000."""
    if model.num_classes is not None:
        return model.num_classes
    if model.weights:
        from .models import get_spec
        from .models.weights import checkpoint_classes, read_state_dict

        spec = get_spec(model.model)
        found = checkpoint_classes(spec.key_map(read_state_dict(model.weights)), spec)
        if found:
            return found
    return 1000


def default_labels(manifest: dict) -> list[str] | None:
    """The class names of published weights (a CIFAR-10 fine-tune's), else ImageNet's for a 1000-class
    classifier, "class 0".. for another size; None for features."""
    logits = [o for o in manifest["outputs"] if o["kind"] == "logits"]
    if not logits:
        return None
    published = lookup(manifest["model"]["weights"]) if manifest["model"].get("weights") else None
    if published is not None:
        return published.class_names()
    classes = logits[0]["classes"]
    return LABELS.read_text().splitlines() if classes == 1000 else [f"class {i}" for i in range(classes)]


def bundle(model: ModelOptions, target: str = DEFAULT_TARGET, *, precision: str = "fp32",
           platform: PlatformOptions = PlatformOptions(), batch: int = 1, out: str | Path | None = None,
           threads: int | None = None, int8: Int8Options | None = None, trt: TrtOptions | None = None,
           labels: str | Path | None = None, cpp: bool = False, sign_key: str | Path | None = None,
           device: DeviceOptions = DeviceOptions(), fetch_engine: bool = False) -> Bundle:
    """Export, prove and package ``model`` for ``target`` on ``platform``; write ``out`` and ``out``.tar.gz.

    ``labels``: a file of class names for a classifier (default: ImageNet's for 1000 classes, else numbered).
    ``cpp``: add the C++ runner (``cpp/``), built and verified here like run.py (see :func:`package`).
    ``sign_key``: an Ed25519 private key (PEM, ``uninext-deploy keygen``) that signs the manifest.
    ``device``: also prove it there, by its own run.py --verify, before it is written (a device of another
    platform than the bundle's is refused before the export). ``fetch_engine``: bring the file the device built
    on first use (a TensorRT engine) back into the bundle, recorded with what it is valid for (GPU, TensorRT
    version). A bundle that misses its parity tolerance is not
    written
    (ParityFailure); nothing half-written is left on any error or interruption.
    """
    target = canonical_target(target)
    check_batch(batch)
    names = read_labels(labels, model)
    key = signing_key(sign_key)  # an unusable key is one line before any export
    backend = get_backend(target, **(trt or TrtOptions()).backend_options())
    if emulated(platform.platform):
        from .arm.run import runtime_for

        runtime_for(backend.name, precision, platform.cpu)  # refuse an impossible combination before exporting
    if cpp and cpp_runner.available(backend.name) is None:
        cpp_runner.Toolchain(log=progress.phase).check_compilers(bundle_platform(platform.platform))
    if fetch_engine and backend.device_built is None:
        raise UserError(f"--fetch-engine brings back what a device builds, and {backend.runtime.title} builds nothing "
                        "there (its bundle is complete as made); use it with --target trt")
    if fetch_engine and device.device is None:
        raise UserError("--fetch-engine brings back the engine a device builds: name it with --device DEST")
    with tempfile.TemporaryDirectory(prefix="uninext-bundle-") as tmp, \
            open_device(device.device, accept_new_host_key=device.accept_new_host_key, timeout=device.timeout) as place:
        proof = (place, of_platform(place, bundle_platform(platform.platform))) if device.device else None
        progress.phase("exporting and checking parity against PyTorch")
        report = parity(model, target, precision=precision, batches=(batch,), out=tmp, threads=threads,
                        int8=int8, trt=trt)
        if not report.passed:
            raise ParityFailure(f"not bundled: parity failed ({report.summary()}); "
                                f"{report.runs[0].divergence or ''}".rstrip("; "))
        return package(Artifact.open(Path(tmp) / f"b{batch}"), report.runs[0], platform=platform, out=out,
                       threads=threads, labels=names, cpp=cpp, sign_key=key, device=proof,
                       fetch_engine=fetch_engine)


def package(artifact: Artifact, run: ParityRun, *, platform: PlatformOptions = PlatformOptions(),
            out: str | Path | None = None, tolerance: dict | None = None, threads: int | None = None,
            labels: list[str] | None = None, cpp: bool = False, sign_key=None,
            device: tuple[Device, dict] | None = None, fetch_engine: bool = False) -> Bundle:
    """Package ``artifact``, which passed ``run`` against PyTorch, as a bundle.

    The golden check uses ``tolerance`` ({metric: (bound, "min"|"max")}; default: the precision's): the
    staged bundle's own ``run.py --verify`` on this machine and, for linux/arm64, on the emulated CPU; with
    ``cpp``, also its C++ runner, built here from the bundle's own ``cpp/`` (cross-compiled for aarch64 and
    run on the emulated CPU for linux/arm64). A miss is a ParityFailure and nothing is written; a runtime
    without a C++ runner (TensorRT) gets none, and the bundle's README says why. ``sign_key`` (a loaded
    Ed25519 private key, :func:`signing_key`) signs the finished manifest (``manifest.json.sig``). ``device``
    (a device and its probe's facts): run.py --verify there too, recorded under "PLATFORM on NAME" with the
    device's CPU, architecture and runtime; with ``fetch_engine``, the file run.py built there on first use
    (``backend.device_built``) comes back into the bundle, recorded under "engine".
    """
    target = bundle_platform(platform.platform)
    backend = get_backend(artifact.backend)
    out = Path(out) if out is not None else default_out(artifact, target)
    archive = out.with_name(out.name + ".tar.gz")
    check_output_path(out)
    if archive.exists() and not archive.is_file():
        raise UserError(f"{archive} exists and is not a file; choose another --out")
    tolerance = tolerance or TOLERANCES[artifact.precision]
    staged_archive = None
    try:
        with atomic_folder(out) as folder:
            toolchain = cpp_runner.Toolchain(log=progress.phase) if cpp and cpp_runner.available(backend.name) is None else None
            if toolchain:
                toolchain.ensure(host_platform())  # the headers the bundle carries
            signer = signature.fingerprint(sign_key.public_key()) if sign_key else None
            manifest = _assemble(folder, artifact, backend, target, run, tolerance, labels, toolchain, cpp, signer)
            progress.phase("verifying the bundle with its own run.py on this machine")
            checks = {host_platform(): run_verify(folder, manifest, threads, PlatformOptions())}
            if emulated(target):
                progress.phase(f"verifying with run.py on the emulated aarch64 {platform.cpu} (qemu)")
                checks[target] = run_verify(folder, manifest, threads, platform)
            if toolchain:
                checks.update(_verify_cpp(folder, manifest, target, threads, platform, progress.phase))
            if device:
                place, facts = device
                progress.phase(f"verifying the bundle with its own run.py on {place.name}")
                checks[f"{target} on {place.name}"] = run_verify(folder, manifest, threads, PlatformOptions(),
                                                                 device=place)
                if toolchain:
                    progress.phase(f"building the C++ runner on {place.name} with the bundle's CMake, and verifying")
                    check = run_verify(folder, manifest, threads, PlatformOptions(), device=place, cpp=True)
                    check.runner = manifest["bundle"]["cpp"]["runner"] + check.runner.removeprefix("C++ runner")
                    checks[f"{target} on {place.name} (C++)"] = check
            manifest["bundle"]["verified"] = {where: check.record() for where, check in checks.items()}
            if device:
                for where in (f"{target} on {device[0].name}", f"{target} on {device[0].name} (C++)"):
                    if where in checks:
                        manifest["bundle"]["verified"][where]["device"] = {
                            "name": device[0].name, "board": device[1]["board"], "cpu": device[1]["cpu"],
                            "machine": device[1]["machine"], "python": device[1]["python"]}
            missed = [f"{c.platform} ({c.runner}): {'; '.join(map(str, c.failed))}" for c in checks.values()
                      if not c.passed]
            if missed:
                raise ParityFailure(f"not bundled: the golden check failed on {', '.join(missed)}")
            roles = {name: e["role"] for name, e in manifest["files"].items()}
            if fetch_engine:
                roles[backend.device_built] = "engine"
                manifest["bundle"]["engine"] = _fetched(device[0], checks[f"{target} on {device[0].name}"], backend,
                                                        folder)
            write_manifest(folder, manifest, roles)
            if sign_key:
                progress.phase(f"signing the manifest (key {signer})")
                signature.sign(folder, sign_key)
            progress.phase("writing the archive")
            staged_archive = write_archive(folder, archive, out.name)
        os.replace(staged_archive, archive)
    finally:
        if staged_archive is not None and staged_archive.exists():
            staged_archive.unlink()
    return Bundle(out, archive, read_manifest(out))


def _fetched(place: Device, check, backend, folder: Path) -> dict:
    """The file the device built on first use (its run.py --verify just ran there), brought into ``folder``:
    what it is valid for, and where it was built."""
    name = backend.device_built
    progress.phase(f"fetching {name} from {place.name}")
    if not place.fetch(f"{check.device['bundle']}/{name}", folder / name):
        raise UserError(f"{place.name} built no {name} during its check; run `verify --device {place.name}` to see "
                        "why, or bundle without --fetch-engine")
    return {"file": name, "built_on": place.name, **backend.device_built_record(folder / name)}


def signing_key(path: str | Path | None):
    """The Ed25519 private key at ``path`` (PEM), or None; an unusable file is one UserError."""
    if path is None:
        return None
    try:
        return signature.load_private_key(path)
    except signature.SignatureError as exc:
        raise UserError(f"--sign-key: {exc}") from None


def _verify_cpp(folder: Path, manifest: dict, target: str, threads: int | None, platform: PlatformOptions,
                tell) -> dict:
    """The staged bundle's C++ runner, built from its own cpp/ by this machine and, for linux/arm64, by the
    emulated CPU (cross-compiled), each running its --verify as a device. {where: VerifyReport}; build time and
    binary size go into the manifest."""
    checks, built = {}, manifest["bundle"]["cpp"].setdefault("built", {})
    for where, options in ((host_platform(), PlatformOptions()), *(((target, platform),) if emulated(target) else ())):
        tell(f"building the C++ runner for {where} and verifying with it")
        check = run_verify(folder, manifest, threads, options, cpp=True)
        built[where] = check.device["cpp_build"]
        # named by its path in the bundle, as run.py's check is by run.py: "C++" is in the key already
        check.runner = manifest["bundle"]["cpp"]["runner"] + check.runner.removeprefix("C++ runner")
        checks[f"{where} (C++)"] = check
    return checks


def _assemble(folder: Path, artifact: Artifact, backend, platform: str, run: ParityRun, tolerance: dict,
              labels: list[str] | None, toolchain=None, cpp: bool = False, signer: str | None = None) -> dict:
    """Copy the device's files into ``folder``; write the runner, labels, requirements, README, manifest."""
    roles = {}
    for name, entry in artifact.manifest["files"].items():
        if entry["role"] in backend.device_roles:
            shutil.copy2(artifact.path / name, folder / name)
            roles[name] = entry["role"]
    for name, source in RUNNER_FILES.items():
        shutil.copyfile(source, folder / name)
        roles[name] = "runner"
    (folder / "run.py").chmod(0o755)
    labels = labels or default_labels(artifact.manifest)
    if labels:
        (folder / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
        roles["labels.txt"] = "labels"
    requirement = backend.runtime_requirement(artifact)
    # requirements.txt installs a version both runners run on: the C++ runner's headers may need a newer one
    installs = cpp_runner.runtime_requirement(backend.name, requirement, toolchain) if toolchain else requirement
    with np.load(artifact.path / GOLDEN) as arrays:
        golden = write_golden(folder, arrays["inputs"], golden_outputs(arrays))
    roles.update({item["file"]: "golden" for item in (golden["inputs"], *golden["outputs"].values())})
    manifest = dict(artifact.manifest)
    manifest["bundle"] = {
        "platform": platform, "entrypoint": "run.py", "labels": "labels.txt" if labels else None, "golden": golden,
        "golden_samples": golden["inputs"]["shape"][0], "runtime": requirement,
        "stand_in": graph_requirement(backend, artifact),  # what `run.py --graph` runs the shipped ONNX with
        "tolerance": {k: list(v) for k, v in tolerance.items()},
        "parity": {"runner": run.runner, "passed": run.passed, "photos": run.images.as_dict(),
                   "random": run.random.as_dict(),
                   "tolerance": {k: list(v) for k, v in TOLERANCES[artifact.precision].items()}},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "signed_by": signer,  # the fingerprint of the key that signs this manifest (manifest.json.sig), or None
    }
    requirements = [*RUNNER_PACKAGES, *backend.runtime.device_packages(installs),
                    *(["cryptography  # run.py --public-key: the bundle's signature"] if signer else [])]
    (folder / "requirements.txt").write_text("\n".join(requirements) + "\n")
    roles["requirements.txt"] = "requirements"
    if toolchain:
        manifest["bundle"]["cpp"] = {"folder": cpp_runner.FOLDER, "runner": f"{cpp_runner.FOLDER}/build/{cpp_runner.BINARY}",
                                     "runtime": installs}
        roles.update(cpp_runner.stage(folder, backend.name, toolchain, manifest))
    elif cpp:
        manifest["bundle"]["cpp"] = {"missing": cpp_runner.available(backend.name)}
    (folder / "README.md").write_text(_readme(manifest, requirements, backend.device_note))
    roles["README.md"] = "readme"
    return write_manifest(folder, manifest, roles)


def _readme(manifest: dict, requirements: list[str], device_note: str) -> str:
    b, pre, model = manifest["bundle"], manifest["preprocessing"], manifest["model"]
    resize = ("resize to exactly the crop" if pre["resize_exact"] else
              f"resize the short side to {pre['resize_short_side']} ({pre['interpolation']}), centre-crop")
    engine_note = f"\n{device_note}\n" if device_note else ""
    stand_in = (f" `python3 run.py --verify --graph` checks the shipped ONNX graph with "
                f"{b['stand_in']['requirement']['package']} instead." if b.get("stand_in") and
                b["stand_in"]["runtime"] != manifest["backend"] else "")
    outputs = "\n".join(f"- Output `{o['name']}`: {o['dtype']} {o['shape']}, {o['meaning']}." for o in manifest["outputs"])
    features = all(o["kind"] == "features" for o in manifest["outputs"])
    signed = (f"\nSigned (Ed25519, key {b['signed_by']}): `python3 run.py --verify --public-key signing.pub.pem` checks "
              "the signature of `manifest.json` before anything else, as does `openssl pkeyutl -verify -pubin -inkey "
              "signing.pub.pem -rawin -in manifest.json -sigfile manifest.json.sig`.\n" if b.get("signed_by") else "")
    cpp = b.get("cpp") or {}
    cpp_note = ("\nA C++ runner with the same verbs is in `cpp/` (its README): `cmake -S cpp -B cpp/build -DCMAKE_BUILD_TYPE="
                "Release && cmake --build cpp/build -j`, then `cpp/build/runner --verify`.\n" if "folder" in cpp else
                f"\nNo C++ runner: {cpp['missing']}.\n" if "missing" in cpp else "")
    cpp_runtime = (f"\n  The C++ runner needs {spec(cpp['runtime'])} ({cpp['runtime']['why']}), as requirements.txt says."
                   if cpp.get("runtime", b["runtime"]) != b["runtime"] else "")
    runners = "`python3 run.py`" + (f", `{cpp['runner']}`" if "runner" in cpp else "")
    seeded = ("\nThe weights are seeded (deterministic, untrained): outputs are not meaningful classes or features, "
              "but every number is still checked against PyTorch.\n" if model.get("seed") is not None else "")
    return f"""# {model['name']} ({manifest['precision']}, {manifest['backend']}) for {b['platform']}

Made by uninext-deploy {manifest['tool_version']} on {b['created']}. Needs Python 3 (tested with 3.11) and:

```
{chr(10).join(requirements)}
```

```
pip install -r requirements.txt
python3 run.py --verify           # checksums, then golden inputs vs PyTorch ({b['golden_samples']} photos)
{"python3 run.py photo.jpg --save maps/  # each feature map's shape and statistics, saved as .npy"
 if features else "python3 run.py photo.jpg          # top-5 classes"}
python3 run.py --bench            # latency percentiles (--threads N, --iters N)
```
{engine_note}{cpp_note}{signed}{seeded}
- Input `{manifest['input']['name']}`: {manifest['input']['dtype']} {manifest['input']['layout']} \
{manifest['input']['shape']} (static).
{outputs}
- Preprocessing: RGB, {resize} to {pre['crop'][0]}x{pre['crop'][1]}, scale to [0, 1], subtract mean \
{pre['mean']}, divide by std {pre['std']} (`imaging.py`).
- Runtime: {b['runtime']['package']} (needs {b['runtime']['why']}).{cpp_runtime}{stand_in}
- Parity at export ({b['parity']['runner']}), worst output {b['parity']['photos']['output']}: cosine \
{b['parity']['photos']['cosine']:.6f}, max abs {b['parity']['photos']['max_abs']:.2e} on photos.
- `run.py --verify` passes when the golden outputs meet {bounds_text(b['tolerance'])}.

Every file's sha256 is in `manifest.json` and is checked before anything is loaded.

Exit codes, the same for {runners} and the host's `uninext-deploy verify`:
0 done (the golden check passed); 1 the golden check failed (outputs off PyTorch's beyond the bounds above);
2 a problem to fix, named in one line with its fix (a missing, modified or special file, a link leaving the
folder, a wrong `--public-key`, a missing or too old runtime, a bad image or option).
"""


def device_parity(place: Device, into: str = "device"):
    """Parity's check on a device: each artifact packaged as its bundle (proven here first, as any bundle), its
    run.py --infer run there on the photos and seeded inputs, and its outputs compared with PyTorch's with the
    precision's tolerances and with this machine's run with the cross-machine ones (arm/run.py's); kept in the
    run's ``into`` field ("device"; "arm" for the emulated CPU) and its misses named so."""
    from .arm.run import CROSS_TOLERANCES

    def check(report: ParityReport, artifacts: list[Artifact], x_images, x_random, references) -> None:
        x = np.concatenate([x_images, x_random])
        for run, artifact in zip(report.runs, artifacts):
            here = run_batched(runner_for(artifact).run, x, artifact.input_shape[0])
            with tempfile.TemporaryDirectory(prefix="uninext-device-parity-") as tmp:
                folder = artifact.path if "bundle" in artifact.manifest else package(
                    artifact, run, out=Path(tmp) / "bundle").path
                progress.phase(f"running the bundle's run.py on {place.name} on {len(x)} inputs")
                there, info = _outputs(run_bundle(place, folder, ["--json"], inputs=x), place)
            photos, noise = slice(None, len(x_images)), slice(len(x_images), None)
            found = {"runner": f"{info['runtime']} {info['version']} on {place.name} ({info['machine']})",
                     "images": compare(references[0], {n: y[photos] for n, y in there.items()}),
                     "random": compare(references[1], {n: y[noise] for n, y in there.items()}),
                     "vs_host": compare(here, there)}
            setattr(run, into, found)
            for kind in GATED_INPUTS[report.precision]:
                run.failed += failures(found[kind], report.tolerance, f"{into} {kind}")
            run.failed += failures(found["vs_host"], CROSS_TOLERANCES[report.precision], f"{into} vs host")
    return check


def _outputs(ran, place: Device) -> tuple[dict, dict]:
    """The outputs run.py --infer --json printed (raw float32, base64) and the runtime that made them."""
    import base64

    report = report_of(ran, "outputs", "run.py --infer", f" on {place.name}")
    outputs = {name: np.frombuffer(base64.b64decode(entry["base64"]), "<f4").reshape(entry["shape"])
               for name, entry in report["outputs"].items()}
    return outputs, {**report["runtime"], "machine": report["machine"]}
