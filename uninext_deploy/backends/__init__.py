"""One backend per runtime: compile an ONNX into the runtime's artifact, open it as a Runner."""

from .base import Backend, Runner
from .registry import ALIASES, ALL_TARGETS, BACKENDS, backend_class, canonical_target, get_backend, options_for

__all__ = ["Backend", "Runner", "get_backend", "options_for", "canonical_target", "backend_class", "ALIASES",
           "ALL_TARGETS", "BACKENDS"]
