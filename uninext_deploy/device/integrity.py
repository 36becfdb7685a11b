"""Bundle integrity: every file the manifest lists must be present as a plain file with its size and sha256,
no link may leave the folder, and the model must have the inputs and outputs the manifest describes; checked
before anything runs. Standard library only (host and device share it; the C++ runner mirrors it).

Checksums catch a corrupted, partial or edited copy; they are not a signature (whoever can edit a file
can also edit ``manifest.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path, PurePosixPath

MANIFEST = "manifest.json"
SCHEMA_VERSION = 3


class IntegrityError(Exception):
    """A bundle or artifact folder is incomplete or does not match its manifest (one line, with the fix)."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise IntegrityError(f"{folder} has no {MANIFEST}; pass the folder written by `uninext-deploy bundle`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        raise IntegrityError(f"{path} is not valid JSON (corrupted copy?); re-copy the bundle") from None
    if manifest.get("schema") != SCHEMA_VERSION:
        raise IntegrityError(f"{path} has schema {manifest.get('schema')!r}, this runner reads schema "
                             f"{SCHEMA_VERSION}; use the run.py that came with the bundle")
    return manifest


def listed_path(folder: Path, name: str) -> Path:
    """The file a manifest entry names, refusing names that are not a plain relative path inside ``folder``."""
    parts = PurePosixPath(name).parts
    if not parts or name.startswith(("/", "\\")) or "\\" in name or ".." in parts or ":" in parts[0]:
        raise IntegrityError(f"{MANIFEST} lists {name!r}, which is not a file inside the bundle; this is not a "
                             "bundle written by `uninext-deploy bundle`")
    return Path(folder) / name


def check_files(folder: Path, manifest: dict) -> None:
    """Raise IntegrityError naming the first missing, truncated, modified or not plain listed file."""
    folder = Path(folder)
    for name, entry in sorted(manifest.get("files", {}).items()):
        path = listed_path(folder, name)
        try:
            info = path.lstat()
        except OSError:
            raise IntegrityError(f"{name} is missing from {folder} (listed in {MANIFEST}); re-copy the whole bundle") from None
        if not stat.S_ISREG(info.st_mode):
            what = ("a link" if stat.S_ISLNK(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode)
                    else "a special file")
            raise IntegrityError(f"{name} is {what}, not a plain file; re-copy the bundle without links (cp -rL)")
        if info.st_size != entry["bytes"]:
            raise IntegrityError(f"{name} has {info.st_size} bytes, {MANIFEST} says {entry['bytes']} "
                                 "(truncated or modified); re-copy the bundle")
        if sha256(path) != entry["sha256"]:
            raise IntegrityError(f"{name} does not match its sha256 in {MANIFEST} (modified or corrupted); "
                                 "re-copy the bundle or rebuild it with `uninext-deploy bundle`")


def check_tree(folder: Path) -> None:
    """The scrutiny an archive gets (archive.extract), for a folder: no link that leads outside it and nothing
    that is not a plain file, folder or link (devices, FIFOs, sockets). Links are not followed."""
    root = os.path.realpath(folder)
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            relative = os.path.relpath(path, root)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                target = os.path.realpath(path)
                if os.path.commonpath([root, target]) != root:
                    raise IntegrityError(f"{relative} is a link to {os.readlink(path)}, outside the bundle; remove it "
                                         "or re-copy the bundle without links (cp -rL)")
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise IntegrityError(f"{relative} is a device, FIFO or other special file, not part of a bundle; "
                                     "remove it")


def check_model_io(manifest: dict, inputs: list[dict], outputs: list[dict]) -> None:
    """Raise IntegrityError unless the opened model's ``inputs`` and ``outputs`` ([{name, shape, dtype}], in the
    model's order) are the ones the manifest describes: a model file that is not the one the manifest was
    written for (swapped, or from another export) is refused before anything runs."""
    described = {"input": [manifest["input"]], "output": manifest["outputs"]}
    for kind, found in (("input", inputs), ("output", outputs)):
        want = [(e["name"], list(e["shape"]), e["dtype"]) for e in described[kind]]
        have = [(e["name"], list(e["shape"]), e["dtype"]) for e in found]
        if [w[0] for w in want] != [h[0] for h in have]:
            raise IntegrityError(f"the model's {kind}s are {', '.join(h[0] for h in have) or 'none'}, {MANIFEST} says "
                                 f"{', '.join(w[0] for w in want)}: the model file is not the one this manifest "
                                 "describes; rebuild the bundle with `uninext-deploy bundle`")
        for (name, shape, dtype), (_, shape_found, dtype_found) in zip(want, have):
            if (shape, dtype) != (shape_found, dtype_found):
                raise IntegrityError(f"the model's {kind} {name} is {dtype_found} {'x'.join(map(str, shape_found))}, "
                                     f"{MANIFEST} says {dtype} {'x'.join(map(str, shape))}: the model file is not the "
                                     "one this manifest describes; rebuild the bundle with `uninext-deploy bundle`")
