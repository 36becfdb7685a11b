"""Check a bundle as the device would: every file's checksum, then its own ``run.py --verify`` (on a device:
this machine or one over SSH, devices/; or on the emulated aarch64 CPU). The host check and the device check
are the same shipped code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .archive import opened
from .arm.platforms import bundle_platform, emulated
from .backends import get_backend
from .device import signature
from .device.compare import Metrics, Miss
from .device.integrity import IntegrityError, check_files, check_tree, read_manifest
from .devices import Device, LocalDevice, emulated_device, open_device, platform_of, report_of, run_bundle
from .errors import UserError
from .options import DeviceOptions, PlatformOptions

if TYPE_CHECKING:
    from .devices.fleet import FleetRun


@dataclass
class VerifyReport:
    bundle: str
    platform: str
    runner: str
    files_checked: int
    metrics: Metrics
    tolerance: dict
    failed: list[Miss] = field(default_factory=list)
    signed_by: str | None = None  # the fingerprint of the key whose signature was checked
    remedy: str | None = None  # what the runner says to do about a failure (8-bit INT8 weights on a CPU without VNNI)
    device: dict | None = None  # how run.py got to run on a device (put, runtime, seconds: devices.base.run_bundle)

    @property
    def passed(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict:
        return {"bundle": self.bundle, "platform": self.platform, "runner": self.runner, "passed": self.passed,
                "files_checked": self.files_checked, "metrics": self.metrics.as_dict(),
                "tolerance": self.tolerance, "failed": [m.as_dict() for m in self.failed], "signed_by": self.signed_by,
                "remedy": self.remedy, "device": self.device}

    def record(self) -> dict:
        """What a bundle's manifest keeps of the check."""
        return {k: v for k, v in self.as_dict().items() if k not in ("bundle", "tolerance", "files_checked",
                                                                     "signed_by", "remedy", "device")}


def newest_bundle(folder: Path) -> Path:
    """The most recently written bundle folder in ``folder`` (what `verify` checks when given none)."""
    found = [p for p in folder.glob("*") if (p / "manifest.json").is_file()] if folder.is_dir() else []
    if not found:
        raise UserError(f"no bundle given and none in {folder}/; pass a bundle folder or .tar.gz, or make one "
                        "with `uninext-deploy bundle`")
    return max(found, key=lambda p: p.stat().st_mtime)


def verify(path: str | Path, *, platform: PlatformOptions = PlatformOptions(), threads: int | None = None,
           public_key: str | Path | None = None, device: DeviceOptions = DeviceOptions()) -> VerifyReport:
    """Check a bundle (folder or archive): with ``public_key``, the manifest's signature first (an unsigned or
    otherwise signed bundle is refused); links and special files (as an archive's members); every checksum; then its golden outputs on ``platform``, by its
    own run.py (told the key too) on ``device``, reached only once the bundle passed here."""
    with opened(path) as folder:
        manifest, signer = checked_here(folder, public_key)
        with open_device(device.device, accept_new_host_key=device.accept_new_host_key,
                         timeout=device.timeout) as place:
            report = run_verify(folder, manifest, threads, platform, public_key=public_key, device=place)
    report.bundle, report.signed_by = str(path), signer
    return report


def verify_fleet(path: str | Path, *, threads: int | None = None, public_key: str | Path | None = None,
                 device: DeviceOptions) -> "FleetRun":
    """The bundle checked here once (signature, checksums), then its run.py --verify on every device
    ``device.devices`` names (an inventory or DESTs, devices.inventory), in parallel."""
    from .devices import fleet

    with opened(path) as folder:
        manifest, _ = checked_here(folder, public_key)
        found = fleet.run("verify", str(path), device.devices,
                          lambda place: run_verify(folder, manifest, threads, PlatformOptions(), public_key=public_key,
                                                   device=place),
                          timeout=device.timeout, accept_new_host_key=device.accept_new_host_key)
    for outcome in found.outcomes:
        if outcome.result is not None:
            outcome.result.bundle = str(path)
    return found


def checked_here(folder: Path, public_key: str | Path | None) -> tuple[dict, str | None]:
    """The bundle's manifest once its signature (given ``public_key``), links and checksums passed here, and
    the signer's fingerprint."""
    try:
        signer = signature.check(folder, public_key) if public_key else None
    except signature.SignatureError as exc:
        raise UserError(f"signature check failed: {exc}") from None
    try:
        manifest = read_manifest(folder)
        if "bundle" not in manifest:
            raise IntegrityError(f"{folder} is an artifact, not a bundle; make one with `uninext-deploy bundle`")
        check_tree(folder)
        check_files(folder, manifest)
    except IntegrityError as exc:
        raise UserError(f"integrity check failed: {exc}") from None
    return manifest, signer


def run_verify(folder: Path, manifest: dict, threads: int | None, platform: PlatformOptions,
               public_key: str | Path | None = None, device: Device = LocalDevice(), cpp: bool = False) -> VerifyReport:
    """``run.py --verify --json`` of the bundle in ``folder`` (``cpp``: its C++ runner, built by the device from
    the bundle's cpp/) on ``device`` (this machine by default), or, for an ARM platform, on the emulated aarch64
    CPU as a device (devices/emulated.py). Where the bundle's runtime cannot run there, ``--graph`` checks its
    ONNX on the stand-in runtime, and the runner says so."""
    target = bundle_platform(platform.platform)
    threads = 1 if emulated(target) else threads  # under emulation threads do not help (devices/emulated.py)
    args = ["--verify", "--json", *(["--threads", str(threads)] if threads else [])]
    if emulated(target):
        device = emulated_device(platform.cpu, platform.arm_cache)  # the emulated CPU: one kind of device
    backend = get_backend(manifest["backend"])
    reason = device.cannot_run(backend)
    if reason:
        args.append("--graph")
    runner, where = "C++ runner" if cpp else "run.py", device.where
    ran = run_bundle(device, folder, args, public_key, cpp=cpp)
    # 1 with its report is a failed check; anything else (a crash's 1 or 139 too) is a problem to fix: 2
    report = report_of(ran, "verify", f"{runner} --verify", where or " here", (0, 1))
    info, checked = report["runtime"], report["verify"]
    label = f"{runner}: {info['runtime']} {info['version']}{where}"
    if reason:
        label += f", on the {backend.name} input graph ({reason}: engine parity runs where it can)"
    return VerifyReport(str(folder), platform_of(report["machine"]), label, report["files_checked"],
                        Metrics.from_dict(checked["metrics"]), checked["tolerance"],
                        [Miss.from_dict(m) for m in checked["failed"]], remedy=checked.get("remedy"),
                        device=ran.record)
