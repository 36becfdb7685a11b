"""Bundle integrity: every file the manifest lists must be present with its size and sha256, checked
before anything is loaded. Standard library only (host and device share it).

Checksums catch a corrupted, partial or edited copy; they are not a signature (whoever can edit a file
can also edit ``manifest.json``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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


def check_files(folder: Path, manifest: dict) -> None:
    """Raise IntegrityError naming the first missing, truncated or modified file."""
    folder = Path(folder)
    for name, entry in sorted(manifest.get("files", {}).items()):
        path = folder / name
        if not path.is_file():
            raise IntegrityError(f"{name} is missing from {folder} (listed in {MANIFEST}); re-copy the whole bundle")
        if path.stat().st_size != entry["bytes"]:
            raise IntegrityError(f"{name} has {path.stat().st_size} bytes, {MANIFEST} says {entry['bytes']} "
                                 "(truncated or modified); re-copy the bundle")
        if sha256(path) != entry["sha256"]:
            raise IntegrityError(f"{name} does not match its sha256 in {MANIFEST} (modified or corrupted); "
                                 "re-copy the bundle or rebuild it with `uninext-deploy bundle`")
