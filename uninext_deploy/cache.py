"""The per-user cache folder (XDG_CACHE_HOME, else ~/.cache): compiled OpenVINO models, the emulated ARM
environment, the GEMM roofline, the models table."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator


def cache_dir(*parts: str) -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root, "uninext-deploy", *parts)


@contextlib.contextmanager
def filling(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock while it is checked and filled: two commands (or two test workers) setting up
    the same cache on a fresh machine wait for each other instead of unpacking into one folder at once."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
