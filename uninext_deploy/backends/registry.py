"""Backends by target name (the target alias table). Each backend module is imported only when its target
is used."""

from __future__ import annotations

import importlib
import inspect

from ..errors import UserError

# target name -> (module, class). "onnx" is the portable ONNX itself, checked with ONNX Runtime.
_TARGETS = {
    "onnx": ("ort", "OrtBackend"),
    "ort": ("ort", "OrtBackend"),
    "openvino": ("openvino", "OpenVinoBackend"),
    "trt": ("tensorrt", "TensorRtBackend"),
}
DEFAULT_TARGET = "ort"  # the same for every command that takes --target
ALIASES = {"onnxruntime": "ort", "ov": "openvino", "tensorrt": "trt", "engine": "trt"}
ALL_TARGETS = ("onnx", "ort", "openvino", "trt")
BACKENDS = ("ort", "openvino", "trt")  # one per runtime: what optimize tries by default


def canonical_target(name: str) -> str:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ALL_TARGETS:
        raise UserError(f"unknown target {name!r}; choose one of {', '.join(ALL_TARGETS)} "
                        f"(aliases: {', '.join(ALIASES)})")
    return key


def backend_class(target: str):
    module, cls = _TARGETS[canonical_target(target)]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def get_backend(target: str, **options):
    """The backend (a ``base.Backend``) of ``target``; ``options`` go to its constructor (e.g. TensorRT's
    trt_version), and options it does not take are one clear error."""
    cls = backend_class(target)
    accepted = inspect.signature(cls).parameters
    unknown = [name for name in options if name not in accepted]
    if unknown:
        flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
        raise UserError(f"{flags} cannot be used with --target {canonical_target(target)}; drop it or choose a "
                        "target that takes it")
    backend = cls(**options)
    problem = backend.available()
    if problem:
        raise UserError(problem)
    return backend


def options_for(target: str, options: dict) -> dict:
    """The subset of ``options`` that ``target``'s backend takes (for commands that try several targets)."""
    accepted = inspect.signature(backend_class(target)).parameters
    return {name: value for name, value in options.items() if name in accepted}


def graph_requirement(backend, artifact) -> dict | None:
    """{"runtime", "requirement"} of what runs the ONNX graph a bundle of ``artifact`` ships (``run.py
    --graph``): the backend itself where it is the stand-in (its model is that graph), else its stand-in where
    the device files hold the graph; None where they hold none. Here, not in ``base``, so that the Backend
    class needs no registry (they would import each other)."""
    if backend.stand_in is None:
        return {"runtime": backend.name, "requirement": backend.graph_requirement(artifact.onnx_file())}
    if "onnx" not in backend.device_roles:
        return None
    stand_in = get_backend(backend.stand_in)
    return {"runtime": stand_in.name, "requirement": stand_in.graph_requirement(artifact.onnx_file())}
