"""The `models` table: measured params and GMACs of every variant next to the official values.

Counting needs torch and builds every variant on meta tensors (seconds); the rows are cached per user,
keyed by the model sources, the tool and the torch version, so the table shows at once after the first
time and is recounted whenever a model file changes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from pathlib import Path

from . import __version__
from .cache import cache_dir
from .errors import UserError

MODELS = Path(__file__).parent / "models"
FAMILIES = ("uninext", "convmlp", "uninet")  # as registered (models/_registry.py); a test keeps the two equal


def _key() -> str:
    digest = hashlib.sha256(f"{__version__} torch {importlib.metadata.version('torch')}".encode())
    for source in sorted(MODELS.glob("*.py")):
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def _count(family: str) -> list[dict]:
    from .models import count_macs, count_params, get_spec, list_models

    rows = []
    for name in list_models(family):
        spec = get_spec(name)
        params, macs = count_params(name), count_macs(name)
        official = spec.official_params is not None
        rows.append({"name": name, "family": spec.family, "input_size": spec.native_size,
                     "params_m": params / 1e6, "gmacs": macs / 1e9,
                     "official_params_m": spec.official_params / 1e6 if official else None,
                     "official_gmacs": spec.official_gmacs if official else None,
                     "params_delta_pct": 100 * (params / spec.official_params - 1) if official else None,
                     "gmacs_delta_pct": 100 * (macs / 1e9 / spec.official_gmacs - 1) if official else None,
                     "features": [f.as_dict() for f in spec.features]})
    return rows


def rows(family: str | None = None) -> list[dict]:
    """Every variant's row (of ``family`` only, if given: an unknown family is one UserError), counted per
    family on first use."""
    if family is not None and family.strip().lower() not in FAMILIES:
        raise UserError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    return [row for name in ([family.strip().lower()] if family else FAMILIES) for row in _family_rows(name)]


def _family_rows(family: str) -> list[dict]:
    path = cache_dir(f"models-{family}-{_key()}.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        table = _count(family)
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        staged.write_text(json.dumps(table))
        os.replace(staged, path)
        return table
