"""Bundle archives: written reproducibly (one top folder, root-owned, sorted, one timestamp), and unpacked
only after every member has been checked, so a hostile archive writes nothing."""

from __future__ import annotations

import contextlib
import gzip
import os
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Iterator

from .artifact import current_umask
from .errors import ParityFailure, UserError


def write_archive(folder: Path, archive: Path, root: str) -> Path:
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
            folder = extract(path, Path(tmp))
            try:
                yield folder
            except (UserError, ParityFailure) as exc:  # named as the user named it, not by a folder now gone
                exc.args = tuple(str(arg).replace(str(folder), f"{path} (unpacked)") for arg in exc.args)
                raise
    else:
        raise UserError(f"{path} does not exist; pass a bundle folder or its .tar.gz")
