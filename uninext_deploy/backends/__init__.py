"""One backend per runtime: compile an ONNX into the runtime's artifact, open it as a Runner.

``Backend`` and ``Runner`` load on first use, so reading the alias table (``registry``) stays cheap.
"""

from .registry import (ALIASES, ALL_TARGETS, BACKENDS, DEFAULT_TARGET, backend_class, canonical_target, get_backend,
                       graph_requirement, options_for)

__all__ = ["Backend", "Runner", "get_backend", "graph_requirement", "options_for", "canonical_target", "backend_class",
           "ALIASES", "ALL_TARGETS", "BACKENDS", "DEFAULT_TARGET"]


def __getattr__(name: str):
    if name in ("Backend", "Runner"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
