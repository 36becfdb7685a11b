"""The data path, one way: model (registry) -> static ONNX -> precision graph -> backend artifact folder.

Everything downstream (parity, profile, bundle, optimize) starts from the artifact this writes.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .artifact import GOLDEN, Artifact, atomic_folder, write_manifest
from .backends import canonical_target, get_backend
from .console import progress
from .device import runtimes
from .device.compare import LOGITS, golden_arrays, run_batched
from .device.imaging import preprocess
from .errors import UserError
from .export.calibration import calibration_set
from .export.onnx import DEFAULT_OPSET, INPUT_NAME, export_onnx, set_metadata
from .export.peak_memory import peak_mb, restart_peak
from .export.precision import Int8Request, quantize_int8, to_fp16
from .images import find_images, load_images
from .models import create_model, get_spec
from .models.weights import remote_of
from .options import DEFAULT_TARGET, PRECISIONS, Int8Options, ModelOptions, TrtOptions, check_batch, check_opset


def versions() -> dict[str, str]:
    """The toolchain's versions, for the manifest (the runtime that checks every graph included)."""
    import onnx

    graph_runtime = runtimes.get(runtimes.GRAPH_RUNTIME)
    return {"uninext-deploy": __version__, "torch": torch.__version__.split("+")[0], "onnx": onnx.__version__,
            graph_runtime.package: graph_runtime.version(), "python": platform.python_version()}


def check_precision(precision: str) -> str:
    """``precision`` lower-cased, or one UserError naming the choices."""
    precision = precision.lower()
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def build_model(model: ModelOptions, batch: int = 1) -> torch.nn.Module:
    return create_model(model.model, input_size=model.input_size, batch_size=check_batch(batch),
                        weights=model.weights, seed=model.seed, features_only=model.features is not None,
                        out_indices=model.features, num_classes=model.num_classes)


def check_finite(model: torch.nn.Module) -> None:
    """One UserError naming the first parameter or buffer holding NaN or Inf (a broken or mis-converted
    checkpoint), before anything is exported from it."""
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise UserError(f"{name} holds NaN/Inf ({bad} of {tensor.numel()} values): the weights are broken or "
                            "mis-converted; nothing was exported: fix the checkpoint (or drop --weights)")


def check_finite_outputs(outputs: dict) -> None:
    for name, y in outputs.items():
        if not np.isfinite(y).all():
            raise UserError(f"PyTorch's output {name} is NaN/Inf on the photos although every weight is finite "
                            "(an overflow in the model); nothing was exported: check the checkpoint's scale")


def torch_runner(model: torch.nn.Module):
    """``model`` as a runner: a batch -> {output name: batch}, as the device runtimes return them."""
    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            y = model(torch.from_numpy(np.ascontiguousarray(x)))
        return dict(zip(model.output_names, (t.numpy() for t in (y if isinstance(y, tuple) else (y,)))))
    return run


def output_entries(torch_model: torch.nn.Module, outputs: dict[str, np.ndarray], batch: int) -> list[dict]:
    """The manifest's description of every output: name, static shape, dtype, and what it holds."""
    features = {f.name: f for f in torch_model.features}
    entries = []
    for name, y in outputs.items():
        entry = {"name": name, "shape": [batch, *y.shape[1:]], "dtype": "float32"}
        if name == LOGITS:
            classes = y.shape[1]
            entry.update(kind="logits", classes=classes, meaning=(
                f"ImageNet-{classes} logits (before softmax)" if classes == 1000 else
                f"{classes}-class logits (before softmax)"))
        else:
            feature = features[name]
            entry.update(kind="features", channels=feature.channels, stride=feature.stride, layout="NCHW",
                         meaning=f"feature map of {name}: {feature.channels} channels at stride {feature.stride}")
        entries.append(entry)
    return entries


def images_tensor(pre: dict, folder: str | Path | None, limit: int | None = None) -> np.ndarray:
    """The photos of ``folder`` (default: the shipped ones) preprocessed per ``pre``, cycled to ``limit``."""
    images, _ = load_images(find_images(folder))
    if not images:
        raise UserError(f"no readable images in {folder}; pass a folder of jpg/png/bmp/webp images")
    if limit:
        images = [images[i % len(images)] for i in range(limit)]
    return np.stack([preprocess(im, pre) for im in images])


def int8_request(torch_model: torch.nn.Module, options: Int8Options | None,
                 float_depthwise: bool = False) -> Int8Request:
    """Calibration samples, held-out photos and the model's INT8 hints for quantizing ``torch_model``;
    ``float_depthwise``: the backend's int8_float_depthwise."""
    spec, options = torch_model.spec, options or Int8Options()
    batch, _, h, w = torch_model.input_shape
    pre = spec.preprocessing(h, w)
    return Int8Request(samples=calibration_set(pre, options.calib, options.calib_size, seed=options.seed),
                       batch=batch, options=options, check_inputs=images_tensor(pre, None),
                       classifier=spec.classifier, float_scope_patterns=spec.int8_float_scopes,
                       block_depth=spec.block_depth, attention=spec.int8_attention,
                       float_depthwise=float_depthwise)


def precision_graph(float_model, precision: str, request: Int8Request | None):
    """The graph that carries ``precision`` and its report: the float graph itself, its FP16-typed or its
    QDQ form."""
    if precision == "fp32":
        return float_model, {}
    if precision == "fp16":
        return to_fp16(float_model)
    result = quantize_int8(float_model, request)
    return result.model, dict(result.report)


def model_tag(model: str, features=None, classes: int | None = None) -> str:
    """How default folder names tell models apart: "uninext_t", "uninext_t-features" (every stage),
    "uninext_t-stage2+stage4", "convmlp_s-10classes" (a custom head)."""
    spec = get_spec(model)
    if features is not None:
        chosen = list(features)
        return f"{spec.name}-features" if chosen == list(range(len(spec.features))) else \
            f"{spec.name}-" + "+".join(spec.features[i].name for i in chosen)
    return spec.name if classes in (None, spec.num_classes) else f"{spec.name}-{classes}classes"


def default_out(tag: str, target: str, precision: str, batch: int, h: int, w: int) -> Path:
    return Path("artifacts") / f"{tag}-{target}-{precision}-b{batch}-{h}x{w}"


def export(model: ModelOptions, target: str = DEFAULT_TARGET, *, precision: str = "fp32", batch: int = 1,
           out: str | Path | None = None, opset: int | None = None, simplify: bool = True,
           int8: Int8Options | None = None, trt: TrtOptions | None = None) -> Artifact:
    """Export ``model`` to ``target`` and write the artifact folder (atomically) at ``out``.

    ``precision`` "fp16" writes an FP16-typed graph, "int8" a QDQ graph calibrated per ``int8``.
    ``opset`` defaults to the backend's (TensorRT: 17, for JetPack's parsers) or else 20.
    """
    target = canonical_target(target)
    precision = check_precision(precision)
    check_opset(opset)
    backend = get_backend(target, **(trt or TrtOptions()).backend_options())
    opset = opset or backend.default_opset or DEFAULT_OPSET
    restart_peak()
    torch_model = build_model(model, batch)
    check_finite(torch_model)
    spec = torch_model.spec
    _, _, h, w = torch_model.input_shape
    out = Path(out) if out is not None else default_out(model_tag(spec.name, model.features, torch_model.num_classes),
                                                        target, precision, batch, h, w)
    with atomic_folder(out) as folder:
        exported = export_onnx(torch_model, opset=opset, simplify=simplify, seed=model.seed)
        pre = spec.preprocessing(h, w)
        set_metadata(exported.model, {
            "model": spec.name, "family": spec.family, "input_shape": list(torch_model.input_shape),
            "mean": list(spec.mean), "std": list(spec.std), "precision": precision,
            "weights": model.weights or f"seeded:{model.seed}", **{f"version.{k}": v for k, v in versions().items()
                                                                   if k != "python"}})
        request = (int8_request(torch_model, int8, backend.int8_float_depthwise) if precision == "int8"
                   else None)
        graph, precision_report = ((exported.model, {}) if backend.applies_precision
                                   else precision_graph(exported.model, precision, request))
        onnx_path = folder / "model.onnx"
        onnx_path.write_bytes(graph.SerializeToString())
        with progress.step(f"compiling the {backend.name} {precision} artifact"):
            compiled = backend.compile(onnx_path, folder, precision, request)
        precision_report.update(compiled.report)
        if precision == "int8":  # PyTorch -> ONNX -> calibration -> compile, as `export` prints it
            precision_report["peak_rss_mb"] = peak_mb()
        if "sensitivity" in precision_report:  # the INT8 fallback's ranking; its node lists stay out of the manifest
            precision_report["sensitivity"] = [{k: v for k, v in e.items() if k != "nodes"}
                                               for e in precision_report["sensitivity"]]
        golden_x = images_tensor(pre, None, limit=max(batch, 4))
        with progress.step(f"golden outputs of PyTorch on {len(golden_x)} photos"):
            golden_y = run_batched(torch_runner(torch_model), golden_x, batch)
        check_finite_outputs(golden_y)
        np.savez_compressed(folder / GOLDEN, **golden_arrays(golden_y, golden_x))
        manifest = {
            "tool": "uninext-deploy", "tool_version": __version__,
            "model": {"name": spec.name, "family": spec.family, "source": spec.source,
                      "weights": model.weights, "seed": None if model.weights else model.seed,
                      "features": list(model.features) if model.features is not None else None,
                      "num_classes": torch_model.num_classes,
                      "params": sum(p.numel() for p in torch_model.parameters())},
            "input": {"name": INPUT_NAME, "shape": list(torch_model.input_shape), "dtype": "float32",
                      "layout": "NCHW"},
            "outputs": output_entries(torch_model, golden_y, batch),
            "preprocessing": pre, "precision": precision, "backend": backend.name, "target": target,
            "runtime": {backend.runtime.package: backend.runtime_version()},
            "onnx": {"opset": opset, "nodes": exported.graph.nodes, "ops": exported.graph.ops,
                     "simplified": simplify, "simplify_max_rel_dev": exported.simplify_max_abs},
            "precision_graph": precision_report,
            "export_seconds": round(exported.seconds, 2), "versions": versions(),
        }
        write_manifest(folder, manifest, {"model.onnx": "onnx", **compiled.files, GOLDEN: "golden"})
    return Artifact.open(out)


def model_of(artifact: Artifact) -> ModelOptions:
    """The model options an existing artifact (or bundle) was exported with, from its manifest."""
    m = artifact.manifest["model"]
    weights = m.get("weights")
    if weights and remote_of(weights) is None and not Path(weights).is_file():  # a URL or name comes from the cache
        raise UserError(f"{artifact.path} was exported from weights file {weights}, which is not here; "
                        "run from where that path resolves")
    _, _, h, w = artifact.input_shape
    features = m.get("features")
    return ModelOptions(m["name"], (h, w), weights, m.get("seed") or 0,
                        tuple(features) if features is not None else None, m.get("num_classes"))
