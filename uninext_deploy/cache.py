"""The per-user cache folder (XDG_CACHE_HOME, else ~/.cache): compiled OpenVINO models, the emulated ARM
environment, the GEMM roofline, the models table."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root, "uninext-deploy", *parts)
