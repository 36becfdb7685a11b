"""Artifact folders: model file(s) + ``manifest.json`` (+ golden I/O), always written atomically.

Everything downstream (runners, parity, bundles) reads the manifest, not the command that made it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
import warnings
from typing import Iterator

from .device.integrity import MANIFEST, SCHEMA_VERSION, IntegrityError, check_files, sha256
from .errors import UserError

GOLDEN = "golden.npz"


@dataclass
class Artifact:
    """A finished artifact folder and its manifest."""

    path: Path
    manifest: dict

    @property
    def backend(self) -> str:
        return self.manifest["backend"]

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["input"]["shape"])

    def file(self, role: str) -> Path:
        """The path of the file with ``role`` ("model", "weights", ...) in this artifact."""
        for name, entry in self.manifest["files"].items():
            if entry.get("role") == role:
                return self.path / name
        raise UserError(f"artifact {self.path} has no {role} file in its manifest")

    def onnx_file(self) -> Path:
        """The ONNX graph this artifact was built from (for ORT artifacts, the model itself)."""
        roles = {entry["role"] for entry in self.manifest["files"].values()}
        return self.file("onnx") if "onnx" in roles else self.file("model")

    @classmethod
    def open(cls, path: str | Path) -> "Artifact":
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise UserError(f"{path} is not an artifact folder (no {MANIFEST}); pass a folder written by "
                            "`uninext-deploy export`")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            raise UserError(f"{manifest_path} is not valid JSON; re-export the artifact") from None
        return cls(path, manifest)

    def check(self) -> None:
        """Every file of the manifest present and unmodified, else one UserError naming it."""
        try:
            check_files(self.path, self.manifest)
        except IntegrityError as exc:
            raise UserError(f"integrity check failed: {exc}") from None


def write_manifest(folder: Path, manifest: dict, roles: dict[str, str]) -> dict:
    """Add checksums and sizes of the files named in ``roles`` ({file name: role}) and write the manifest."""
    manifest = dict(manifest, schema=SCHEMA_VERSION)
    manifest["files"] = {name: {"role": role, "bytes": (folder / name).stat().st_size,
                                "sha256": sha256(folder / name)} for name, role in roles.items()}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def check_output_path(path: Path, marker: str = MANIFEST) -> None:
    """Refuse, with one line, an output path we must not write: a file, or a non-empty folder that is not
    one of ours (ours hold ``marker``: an artifact's or bundle's manifest, an optimize run's results)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"output path {path} is an existing file; pass a folder path with --out")
    if path.is_dir() and any(path.iterdir()) and not (path / marker).exists():
        raise UserError(f"output folder {path} exists and was not written by uninext-deploy (no {marker}); "
                        "choose another --out or empty it")
    parent = path.parent if path.parent != Path("") else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise UserError(f"cannot write to {path}: {probe} is not a writable folder; choose another --out")


class Replaced(UserWarning):
    """An output folder of ours was replaced by a new one (in one step: readers see the old or the new)."""


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, over quota, over the file-size limit


class DiskFull(UserError):
    """Writing an output ran out of space: the whole command stops (optimize does not try the next candidate)."""

    def __init__(self, target: Path, why: str):
        super().__init__(f"cannot write {target}: {why}; nothing was written: free some space or choose another --out")
        self.why = why


@contextlib.contextmanager
def atomic_folder(target: Path, marker: str = MANIFEST) -> Iterator[Path]:
    """Yield a staging folder beside ``target``; on success it takes ``target``'s place in one step.

    On any error (or Ctrl-C) the staging folder is removed and ``target`` is left as it was; running out of
    disk space is one UserError saying so. An existing ``target`` is replaced only if it holds ``marker``
    (see check_output_path), with a :class:`Replaced` warning. Two writers of one ``target`` at once each
    publish a complete folder; the last one stays.
    """
    check_output_path(target, marker)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise _write_error(exc, target) from None
    staging.chmod(0o777 & ~current_umask())  # mkdtemp's 0700 would make the result private
    try:
        try:
            yield staging
            check_output_path(target, marker)  # something else may have appeared there meanwhile
            replaced = _publish(staging, target)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise _write_error(exc, target) from None
            raise
        except DiskFull as exc:  # an output written inside this one (optimize's candidates): name this one
            raise DiskFull(target, exc.why) from None
        if replaced:
            warnings.warn(f"replaced the earlier {target} (in one step)", Replaced, stacklevel=3)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _write_error(exc: OSError, target: Path) -> UserError:
    if exc.errno in DISK_FULL:
        return DiskFull(target, {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is "
                                 "exhausted", errno.EFBIG: "a file exceeds the file-size limit"}[exc.errno])
    return UserError(f"cannot write {target}: {exc.strerror}; nothing was written: choose another --out")


def _publish(staging: Path, target: Path) -> bool:
    """Move ``staging`` to ``target``: a rename that never replaces, else an atomic exchange with the folder
    there (renameat2 RENAME_EXCHANGE), whose old contents are then deleted. Whether a folder was replaced."""
    while True:
        try:
            _rename(staging, target, RENAME_NOREPLACE)
            return False
        except FileExistsError:
            pass
        try:
            _rename(staging, target, RENAME_EXCHANGE)
        except FileNotFoundError:  # the other writer's folder went away in between: try the plain rename again
            continue
        shutil.rmtree(staging, ignore_errors=True)  # now holds the replaced folder
        return True


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_libc = ctypes.CDLL(None, use_errno=True)


def _rename(source: Path, target: Path, flags: int) -> None:
    """renameat2(2): atomic on one filesystem; OSError (FileExistsError, FileNotFoundError...) as the kernel says."""
    if _libc.renameat2(-100, os.fsencode(source), -100, os.fsencode(target), flags) != 0:  # -100: AT_FDCWD
        code = ctypes.get_errno()
        if code == errno.ENOTEMPTY:
            code = errno.EEXIST
        raise OSError(code, os.strerror(code), str(target))


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
