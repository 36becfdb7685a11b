"""Backends by target name. Each runtime module is imported only when its target is used."""

from __future__ import annotations

import importlib
import inspect

from ..errors import UserError
from .base import Backend, Runner

# target name -> (module, class). "onnx" is the portable ONNX itself, checked with ONNX Runtime.
_TARGETS = {
    "onnx": ("ort", "OrtBackend"),
    "ort": ("ort", "OrtBackend"),
    "openvino": ("openvino", "OpenVinoBackend"),
    "trt": ("tensorrt", "TensorRtBackend"),
}
ALIASES = {"onnxruntime": "ort", "ov": "openvino", "tensorrt": "trt", "engine": "trt"}
ALL_TARGETS = ("onnx", "ort", "openvino", "trt")


def canonical_target(name: str) -> str:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ALL_TARGETS:
        raise UserError(f"unknown target {name!r}; choose one of {', '.join(ALL_TARGETS)} "
                        f"(aliases: {', '.join(ALIASES)})")
    return key


def get_backend(target: str, **options) -> Backend:
    """The backend of ``target``; ``options`` go to its constructor (e.g. TensorRT's trt_version), and
    options it does not take are one clear error."""
    key = canonical_target(target)
    module, cls = _TARGETS[key]
    backend_class = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    accepted = inspect.signature(backend_class).parameters
    unknown = [name for name in options if name not in accepted]
    if unknown:
        flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
        raise UserError(f"{flags} cannot be used with --target {key}; drop it or choose a target that takes it")
    backend = backend_class(**options)
    problem = backend.available()
    if problem:
        raise UserError(problem)
    return backend


__all__ = ["Backend", "Runner", "get_backend", "canonical_target", "ALL_TARGETS"]
