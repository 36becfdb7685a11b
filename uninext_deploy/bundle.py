"""Embedded runtime bundles: what a user copies to the device, proven before it leaves the host.

A bundle is an artifact folder cut down to what the device runs (the backend's ``device_roles``), plus
golden inputs and PyTorch outputs, ImageNet labels, a torch-free runner (``run.py`` and the standalone
modules of :mod:`uninext_deploy.device`), ``requirements.txt`` and a README, all listed with their
sha256 in ``manifest.json``; and the same folder as a ``.tar.gz``. Both are written atomically.

Before a bundle is written, the artifact passes parity against PyTorch (``api.parity``) and the
staged bundle passes its own golden check: with the host runner, and for ``linux/arm64`` also with
``run.py --verify`` under the emulated aarch64 CPU.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform as host
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np

from . import api
from .artifact import GOLDEN, Artifact, atomic_folder, check_output_path, current_umask, write_manifest
from .backends import canonical_target, get_backend
from .device.integrity import IntegrityError, check_files, read_manifest
from .errors import ParityFailure, UserError
from .parity import TOLERANCES, Metrics, verdict

DEVICE = Path(__file__).parent / "device"
# bundle file name -> source; run.py imports the others as plain modules
RUNNER_FILES = {"run.py": DEVICE / "run.py", "runtimes.py": DEVICE / "runtimes.py", "imaging.py": DEVICE / "imaging.py",
                "integrity.py": DEVICE / "integrity.py", "parity.py": Path(__file__).parent / "parity.py"}
LABELS = Path(__file__).parent / "data" / "imagenet_labels.txt"


def bundle_platform(name: str) -> str:
    """"linux/x86_64" or "linux/arm64" for a --platform value ("host": this machine)."""
    from .arm.run import normalise_platform

    key = normalise_platform(name)
    if key == "host":
        machine = host.machine().lower()
        return "linux/arm64" if machine in ("aarch64", "arm64") else "linux/x86_64"
    return key


@dataclass
class Bundle:
    path: Path
    archive: Path
    manifest: dict

    def sizes(self) -> list[tuple[str, str, int]]:
        """(file, role, bytes) of every file, largest first."""
        return sorted(((name, e["role"], e["bytes"]) for name, e in self.manifest["files"].items()),
                      key=lambda row: -row[2])


@dataclass
class VerifyReport:
    bundle: str
    platform: str
    runner: str
    files_checked: int
    metrics: Metrics
    tolerance: dict
    failed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict:
        return {"bundle": self.bundle, "platform": self.platform, "runner": self.runner, "passed": self.passed,
                "files_checked": self.files_checked, "metrics": self.metrics.as_dict(),
                "tolerance": self.tolerance, "failed": self.failed}


def default_out(artifact: Artifact, platform: str) -> Path:
    """bundles/<model>-<target>-<precision>-b<batch>-<H>x<W>-<os>-<arch>"""
    batch, _, h, w = artifact.input_shape
    name = api.default_out(artifact.manifest["model"]["name"], artifact.manifest["target"], artifact.precision,
                           batch, h, w).name
    return Path("bundles") / f"{name}-{platform.replace('/', '-')}"


def bundle(model: str = api.DEFAULT_MODEL, target: str = "ort", *, precision: str = "fp32",
           platform: str = "host", batch: int = 1, input_size=None, out: str | Path | None = None,
           weights: str | None = None, seed: int = 0, int8=None, backend_options: dict | None = None,
           cpu: str = "cortex-a76", arm_cache: str | Path | None = None, threads: int | None = None,
           progress=None) -> Bundle:
    """Export, prove and package ``model`` for ``target`` on ``platform``; write ``out`` and ``out``.tar.gz.

    ``progress(step)`` is told each step by name. A bundle that misses its parity tolerance is not written
    (ParityFailure); nothing half-written is left on any error or interruption.
    """
    platform = bundle_platform(platform)
    target = canonical_target(target)
    if _emulated(platform, target):
        from .arm.run import runtime_for

        runtime_for(target, precision, cpu)  # refuse an impossible combination before exporting
    get_backend(target, **(backend_options or {}))
    spec_name = api.get_spec(model).name
    with tempfile.TemporaryDirectory(prefix="uninext-bundle-") as tmp:
        (progress or (lambda step: None))("exporting and checking parity against PyTorch")
        report = api.parity(spec_name, target, precision=precision, batches=(batch,), input_size=input_size,
                            weights=weights, seed=seed, out=tmp, threads=threads, int8=int8,
                            backend_options=backend_options)
        if not report.passed:
            raise ParityFailure(f"not bundled: parity failed ({'; '.join(report.runs[0].failed)}); "
                                f"{report.runs[0].divergence or ''}".rstrip("; "))
        return package(Artifact.open(Path(tmp) / f"b{batch}"), report.runs[0], platform=platform, out=out,
                       threads=threads, cpu=cpu, arm_cache=arm_cache, progress=progress)


def _emulated(platform: str, target: str) -> bool:
    """Whether a bundle for ``platform`` is checked under ARM emulation here: for the runtimes the emulated
    CPU runs (not TensorRT, which needs the device's GPU)."""
    from .arm.run import RUNTIMES

    return platform == "linux/arm64" and platform != bundle_platform("host") and target in RUNTIMES


def package(artifact: Artifact, run, *, platform: str = "host", out: str | Path | None = None,
            tolerance: dict | None = None, threads: int | None = None, cpu: str = "cortex-a76",
            arm_cache: str | Path | None = None, progress=None) -> Bundle:
    """Package ``artifact``, which passed ``run`` (its api.ParityRun against PyTorch), as a bundle.

    The golden check uses ``tolerance`` ({metric: (bound, "min"|"max")}; default: the precision's) on this
    machine and, for linux/arm64, on the emulated CPU; a miss is a ParityFailure and nothing is written.
    """
    platform = bundle_platform(platform)
    tell = progress or (lambda step: None)
    backend = get_backend(artifact.manifest["target"])
    out = Path(out) if out is not None else default_out(artifact, platform)
    archive = out.with_name(out.name + ".tar.gz")
    check_output_path(out)
    if archive.exists() and not archive.is_file():
        raise UserError(f"{archive} exists and is not a file; choose another --out")
    tolerance = tolerance or TOLERANCES[artifact.precision]
    staged_archive = None
    try:
        with atomic_folder(out) as folder:
            manifest = _assemble(folder, artifact, backend, platform, run, tolerance)
            tell("verifying the bundle's golden outputs on this machine")
            local = _verify_folder(folder, manifest, threads)
            manifest["bundle"]["verified"] = {local.platform: _record(local)}
            checks = [local]
            if _emulated(platform, artifact.manifest["target"]):
                tell(f"verifying with run.py on the emulated aarch64 {cpu} (qemu)")
                checks.append(_verify_folder(folder, manifest, threads, cpu, arm_cache))
                manifest["bundle"]["verified"][platform] = _record(checks[-1])
            missed = [f"{c.platform} ({c.runner}): {'; '.join(c.failed)}" for c in checks if not c.passed]
            if missed:
                raise ParityFailure(f"not bundled: the golden check failed on {', '.join(missed)}")
            write_manifest(folder, manifest, {name: e["role"] for name, e in manifest["files"].items()})
            tell("writing the archive")
            staged_archive = _write_archive(folder, archive, out.name)
        os.replace(staged_archive, archive)
    finally:
        if staged_archive is not None and staged_archive.exists():
            staged_archive.unlink()
    return Bundle(out, archive, read_manifest(out))


def _record(report: VerifyReport) -> dict:
    return {k: v for k, v in report.as_dict().items() if k not in ("bundle", "tolerance", "files_checked")}


def _assemble(folder: Path, artifact: Artifact, backend, platform: str, run, tolerance: dict) -> dict:
    """Copy the device's files into ``folder``; write the runner, labels, requirements, README, manifest."""
    roles = {}
    for name, entry in artifact.manifest["files"].items():
        if entry["role"] in backend.device_roles or entry["role"] == "golden":
            shutil.copy2(artifact.path / name, folder / name)
            roles[name] = entry["role"]
    for name, source in RUNNER_FILES.items():
        shutil.copyfile(source, folder / name)
        roles[name] = "runner"
    (folder / "run.py").chmod(0o755)
    shutil.copyfile(LABELS, folder / "labels.txt")
    roles["labels.txt"] = "labels"
    requirement = backend.runtime_requirement(artifact)
    onnxruntime = None  # what `run.py --onnxruntime` needs, for bundles that ship an ONNX graph
    if requirement["package"] == "onnxruntime":
        onnxruntime = requirement
    elif any(name.endswith(".onnx") for name in roles):
        from .backends.ort import onnxruntime_requirement

        onnxruntime = onnxruntime_requirement(artifact.onnx_file())
    golden = np.load(artifact.path / GOLDEN)
    manifest = dict(artifact.manifest)
    manifest["bundle"] = {
        "platform": platform, "entrypoint": "run.py", "labels": "labels.txt", "golden": GOLDEN,
        "golden_samples": int(len(golden["inputs"])), "runtime": requirement,
        "onnxruntime": onnxruntime,
        "tolerance": {k: list(v) for k, v in tolerance.items()},
        "parity": {"runner": run.runner, "passed": run.passed, "photos": run.images.as_dict(),
                   "random": run.random.as_dict(),
                   "tolerance": {k: list(v) for k, v in TOLERANCES[artifact.precision].items()}},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    requirements = ["numpy", "pillow", *backend.device_requirements(requirement)]
    (folder / "requirements.txt").write_text("\n".join(requirements) + "\n")
    roles["requirements.txt"] = "requirements"
    (folder / "README.md").write_text(_readme(manifest, requirements, backend.device_note))
    roles["README.md"] = "readme"
    return write_manifest(folder, manifest, roles)


def _readme(manifest: dict, requirements: list[str], device_note: str) -> str:
    b, pre, model = manifest["bundle"], manifest["preprocessing"], manifest["model"]
    resize = ("resize to exactly the crop" if pre["resize_exact"] else
              f"resize the short side to {pre['resize_short_side']} ({pre['interpolation']}), centre-crop")
    engine_note = f"\n{device_note}\n" if device_note else ""
    seeded = ("\nThe weights are seeded (deterministic, untrained): predictions are not meaningful classes, "
              "but every number is still checked against PyTorch.\n" if model.get("seed") is not None else "")
    return f"""# {model['name']} ({manifest['precision']}, {manifest['backend']}) for {b['platform']}

Made by uninext-deploy {manifest['tool_version']} on {b['created']}. Needs Python 3 (tested with 3.11) and:

```
{chr(10).join(requirements)}
```

```
pip install -r requirements.txt
python3 run.py --verify           # checksums, then golden inputs vs PyTorch ({b['golden_samples']} photos)
python3 run.py photo.jpg          # top-5 ImageNet classes
python3 run.py --bench            # latency percentiles (--threads N, --iters N)
```
{engine_note}{seeded}
- Input `{manifest['input']['name']}`: {manifest['input']['dtype']} {manifest['input']['layout']} \
{manifest['input']['shape']} (static). Output `{manifest['output']['name']}`: {manifest['output']['meaning']}.
- Preprocessing: RGB, {resize} to {pre['crop'][0]}x{pre['crop'][1]}, scale to [0, 1], subtract mean \
{pre['mean']}, divide by std {pre['std']} (`imaging.py`).
- Runtime: {b['runtime']['package']} (needs {b['runtime']['why']}).
- Parity at export ({b['parity']['runner']}): cosine {b['parity']['photos']['cosine']:.6f}, max abs \
{b['parity']['photos']['max_abs']:.2e}, top-1 agreement {b['parity']['photos']['top1']:.2f} on photos.
- `run.py --verify` passes when the golden outputs meet {', '.join(f"{k} {'>=' if t == 'min' else '<='} {v:g}" for k, (v, t) in b['tolerance'].items())}.

Every file's sha256 is in `manifest.json` and is checked before anything is loaded.
"""


def _write_archive(folder: Path, archive: Path, root: str) -> Path:
    """``folder`` as a gzip tar (one top folder ``root``, owner root, sorted, one timestamp) beside
    ``archive``; returns the staged path for the caller to rename."""
    descriptor, name = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".tmp", dir=archive.parent)
    os.close(descriptor)
    staged = Path(name)
    staged.chmod(0o666 & ~current_umask())
    stamp = int(time.time())

    def normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = stamp
        info.mode = 0o755 if info.isdir() or info.mode & 0o100 else 0o644
        return info

    with open(staged, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=stamp, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(folder, arcname=root, recursive=False, filter=normalised)
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=f"{root}/{path.relative_to(folder).as_posix()}", recursive=False, filter=normalised)
    return staged


def _unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why extracting ``member`` could write outside the bundle folder (or is not a plain file), or None."""
    name = PurePosixPath(member.name)
    if member.name.startswith(("/", "\\")) or name.is_absolute() or ":" in name.parts[0]:
        return "has an absolute path"
    if ".." in name.parts:
        return "climbs out with '..'"
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        resolved = target if member.islnk() else name.parent / target
        if target.is_absolute() or member.linkname.startswith("/") or _climbs_out(resolved):
            return f"is a link to {member.linkname}, outside the bundle"
    elif not (member.isfile() or member.isdir()):
        return "is a device, FIFO or other special file"
    return None


def _climbs_out(path: PurePosixPath) -> bool:
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part in (".", "") else 1
        if depth < 0:
            return True
    return False


def extract(archive: Path, dest: Path) -> Path:
    """Unpack a bundle archive safely into ``dest``; return its one top folder. Refuses (UserError) absolute
    paths, '..', links leaving the bundle and special files before anything is written."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                reason = _unsafe_member(member)
                if reason:
                    raise UserError(f"refusing {archive}: member {member.name!r} {reason}; this is not a bundle "
                                    "written by `uninext-deploy bundle`")
            tops = {PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts}
            if len(tops) != 1:
                raise UserError(f"refusing {archive}: a bundle archive holds exactly one folder, this one has "
                                f"{len(tops)} top-level entries")
            tar.extractall(dest, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise UserError(f"cannot read {archive} as a bundle archive ({exc}); pass a bundle folder or .tar.gz") from None
    return dest / tops.pop()


@contextlib.contextmanager
def opened(path: str | Path) -> Iterator[Path]:
    """The bundle folder at ``path``, or the safely unpacked folder of the archive at ``path``."""
    path = Path(path)
    if path.is_dir():
        yield path
    elif path.is_file():
        with tempfile.TemporaryDirectory(prefix="uninext-verify-") as tmp:
            yield extract(path, Path(tmp))
    else:
        raise UserError(f"{path} does not exist; pass a bundle folder or its .tar.gz")


def newest_bundle(folder: Path) -> Path:
    """The most recently written bundle folder in ``folder`` (what `verify` checks when given none)."""
    found = [p for p in folder.glob("*") if (p / "manifest.json").is_file()] if folder.is_dir() else []
    if not found:
        raise UserError(f"no bundle given and none in {folder}/; pass a bundle folder or .tar.gz, or make one "
                        "with `uninext-deploy bundle`")
    return max(found, key=lambda p: p.stat().st_mtime)


def verify(path: str | Path, *, platform: str = "host", cpu: str = "cortex-a76",
           arm_cache: str | Path | None = None, threads: int | None = None) -> VerifyReport:
    """Check a bundle (folder or archive): every checksum first, then its golden outputs on ``platform``
    (this machine's runner, or ``run.py --verify`` under the emulated aarch64 CPU)."""
    platform = bundle_platform(platform)
    emulated_cpu = cpu if platform != bundle_platform("host") else None
    with opened(path) as folder:
        try:
            manifest = read_manifest(folder)
            if "bundle" not in manifest:
                raise IntegrityError(f"{folder} is an artifact, not a bundle; make one with `uninext-deploy bundle`")
            check_files(folder, manifest)
        except IntegrityError as exc:
            raise UserError(f"integrity check failed: {exc}") from None
        report = _verify_folder(folder, manifest, threads, emulated_cpu, arm_cache)
    report.bundle = str(path)
    return report


def _verify_folder(folder: Path, manifest: dict, threads: int | None, emulated_cpu: str | None = None,
                   arm_cache=None) -> VerifyReport:
    """Golden outputs of the bundle in ``folder``: with this machine's runner, or with the bundle's own
    ``run.py`` on the emulated aarch64 ``emulated_cpu``."""
    tolerance = {k: tuple(v) for k, v in manifest["bundle"]["tolerance"].items()}
    if emulated_cpu is None:
        artifact = Artifact(folder, manifest)
        runner, label = api.runner_for(artifact, threads)
        golden = np.load(folder / manifest["bundle"]["golden"])
        metrics, failed = verdict(runner.run, golden["inputs"], golden["outputs"], artifact.input_shape[0], tolerance)
    else:
        label, metrics, failed = _verify_emulated(folder, manifest, emulated_cpu, arm_cache)
    platform = "linux/arm64" if emulated_cpu else bundle_platform("host")
    return VerifyReport(str(folder), platform, label, len(manifest["files"]), metrics,
                        {k: list(v) for k, v in tolerance.items()}, failed)


def _verify_emulated(folder: Path, manifest: dict, cpu: str, arm_cache) -> tuple[str, Metrics, list[str]]:
    """``run.py --verify`` of the bundle itself, on the emulated aarch64 ``cpu``."""
    from .arm.environment import ArmEnvironment
    from .arm.run import runtime_for

    runtime = runtime_for(manifest["target"], manifest["precision"], cpu)
    env = ArmEnvironment(arm_cache)
    env.ensure(runtime, cpu)
    command, environ = env.command(runtime, cpu, folder / "run.py", "--verify", "--json", "--threads", "1")
    result = subprocess.run(command, env=environ, capture_output=True, text=True)
    if result.returncode not in (0, 1):
        last = (result.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise UserError(f"run.py --verify failed on the emulated {cpu}: {last}")
    report = json.loads(result.stdout)
    verdict = report["verify"]
    info = report["runtime"]
    label = f"run.py: {info['runtime']} {info['version']} on emulated {report['machine']} {cpu} (qemu)"
    return label, Metrics(**verdict["metrics"]), verdict["failed"]
