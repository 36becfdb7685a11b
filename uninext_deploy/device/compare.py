"""Compare outputs with reference outputs: metrics, per-precision tolerances, structured verdicts.

numpy only, so the same comparison runs on the host, under ARM emulation and on the device: bundles ship
this file verbatim as ``compare.py``. Tolerances follow the anchor tools' practice: tight elementwise for
FP32 (Polygraphy's default atol/rtol scale), statistical (cosine) for FP16, task-level (cosine, top-1
agreement) for INT8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

# Input sets whose metrics must meet the tolerance, per precision. INT8 is calibrated on real images, so
# seeded noise inputs fall outside its calibrated ranges: for INT8 they are reported, not gated.
GATED_INPUTS = {"fp32": ("images", "random"), "fp16": ("images", "random"), "int8": ("images",)}

# metric -> (bound, "min" | "max"); the metric must be >= a "min" bound and <= a "max" bound.
TOLERANCES: dict[str, dict[str, tuple[float, str]]] = {
    "fp32": {"rel_max_abs": (1e-4, "max"), "cosine": (0.99999, "min")},
    "fp16": {"cosine": (0.999, "min")},
    "int8": {"cosine": (0.99, "min")},
}


LOGITS = "logits"  # the one output whose rows are class scores; feature maps are named after their stage

Outputs = dict  # {output name: array, samples first}, in the model's output order


@dataclass
class Metrics:
    """How one output (or, from :func:`compare`, the worst of several) matches its reference.

    ``output`` names the output these metrics are of; ``outputs`` holds every output's own metrics when
    the model has more than one (the fields above are then the worst output's, by cosine). Top-k fields are
    None for outputs that are not logits (feature maps).
    """

    samples: int
    max_abs: float
    mean_abs: float
    rel_max_abs: float  # max_abs / max |reference|: comparable across models with different logit scales
    cosine: float  # the worst per-sample cosine similarity
    sqnr_db: float
    top1: float | None  # fraction of samples whose arg-max agrees
    top5: float | None  # mean overlap of the top-5 sets, in [0, 1]
    top1_decisive: float | None  # top-1 agreement over samples whose reference margin (top-1 minus top-2 logit)
    # exceeds twice the typical deviation (99th percentile of |error|): a flip there needs an outlier error,
    # a real disagreement; a flip of a near-tie within the typical deviation is not counted
    output: str = LOGITS
    outputs: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Metrics":
        outputs = {k: cls.from_dict(v) for k, v in data.get("outputs", {}).items()}
        return cls(**{**data, "outputs": outputs})

    def each(self) -> list["Metrics"]:
        """The metrics of every output (just these, for a model with one output)."""
        return list(self.outputs.values()) or [self]


def compare_arrays(reference: np.ndarray, output: np.ndarray, logits: bool = True, name: str = LOGITS) -> Metrics:
    """Metrics of one output against its reference, both samples first; top-k only for ``logits``."""
    ref = reference.astype(np.float64).reshape(len(reference), -1)
    out = output.astype(np.float64).reshape(len(output), -1)
    if ref.shape != out.shape:
        raise ValueError(f"output {name} shape {output.shape} differs from reference {reference.shape}")
    if not np.isfinite(out).all():
        nan = None if not logits else 0.0
        return Metrics(len(ref), float("inf"), float("inf"), float("inf"), -1.0, float("-inf"), nan, nan, nan, name)
    err = out - ref
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cosine = np.where(norms > 0, (ref * out).sum(axis=1) / np.maximum(norms, 1e-300), 0.0)
    noise = float((err**2).sum())
    metrics = Metrics(
        samples=len(ref),
        max_abs=float(np.abs(err).max()),
        mean_abs=float(np.abs(err).mean()),
        rel_max_abs=float(np.abs(err).max() / max(np.abs(ref).max(), 1e-300)),
        cosine=float(cosine.min()),
        sqnr_db=float("inf") if noise == 0 else float(10 * np.log10((ref**2).sum() / noise)),
        top1=None, top5=None, top1_decisive=None, output=name)
    if logits:
        k = min(5, ref.shape[1])
        top_ref, top_out = np.argsort(-ref, axis=1)[:, :k], np.argsort(-out, axis=1)[:, :k]
        ordered = np.sort(ref, axis=1)
        margin = ordered[:, -1] - ordered[:, -2] if ref.shape[1] > 1 else np.full(len(ref), np.inf)
        decisive = margin > 2 * np.percentile(np.abs(err), 99)
        agree = top_ref[:, 0] == top_out[:, 0]
        metrics.top1 = float(agree.mean())
        metrics.top5 = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top_ref, top_out)]))
        metrics.top1_decisive = float(agree[decisive].mean()) if decisive.any() else 1.0
    return metrics


def compare(reference: Outputs, output: Outputs) -> Metrics:
    """Metrics of every output of ``output`` against ``reference`` (both {name: array}); the fields are the
    worst output's (lowest cosine, then largest relative error), ``outputs`` holds each one's."""
    if list(reference) != list(output):
        raise ValueError(f"outputs {', '.join(output)} differ from the reference's {', '.join(reference)}")
    each = {name: compare_arrays(reference[name], output[name], name == LOGITS, name) for name in reference}
    worst = min(each.values(), key=lambda m: (m.cosine, -m.rel_max_abs))
    if len(each) == 1:
        return worst
    return Metrics(**{**asdict(worst), "outputs": each})


@dataclass(frozen=True)
class Miss:
    """One metric outside its bound: ``value`` of ``metric`` against ``bound`` ("min": must be >=, "max": must
    be <=), on the input set ``inputs`` ("images", "random", "arm images", "arm vs host", "golden", ...)."""

    metric: str
    value: float
    bound: float
    kind: str
    inputs: str = ""
    output: str = ""  # named where the model has several outputs

    def __str__(self) -> str:
        where = f"{self.inputs}: " if self.inputs else ""
        of = f" of {self.output}" if self.output else ""
        return f"{where}{self.metric}{of} {self.value:.6g} {'<' if self.kind == 'min' else '>'} {self.bound:g}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Miss":
        return cls(**data)


def failures(metrics: Metrics, tolerance: dict[str, tuple[float, str]], inputs: str = "") -> list[Miss]:
    """How ``metrics`` (of the input set ``inputs``) misses ``tolerance``, output by output (every output is
    held to it; metrics an output does not have, like top-1 of a feature map, do not apply); empty when it
    passes."""
    misses = []
    several = len(metrics.outputs) > 1
    for each in metrics.each():
        for name, (bound, kind) in tolerance.items():
            value = getattr(each, name)
            if value is not None and ((kind == "min" and not value >= bound) or (kind == "max" and not value <= bound)):
                misses.append(Miss(name, float(value), float(bound), kind, inputs, each.output if several else ""))
    return misses


def bounds_text(tolerance: dict[str, tuple[float, str]]) -> str:
    """"cosine >= 0.99, rel_max_abs <= 0.0001": a tolerance as people read it."""
    return ", ".join(f"{k} {'>=' if kind == 'min' else '<='} {b:g}" for k, (b, kind) in tolerance.items())


def verdict(run: Callable[[np.ndarray], Outputs], x: np.ndarray, reference: Outputs, batch: int,
            tolerance: dict[str, tuple[float, str]], inputs: str = "golden") -> tuple[Metrics, list[Miss]]:
    """Metrics of ``run`` (batch -> batch) on ``x`` against ``reference``, and how they miss ``tolerance``."""
    metrics = compare(reference, run_batched(run, x, batch))
    return metrics, failures(metrics, tolerance, inputs)


def batched(x: np.ndarray, batch: int) -> list[np.ndarray]:
    """Split samples into full batches of ``batch``, repeating the last sample to fill the final one."""
    pad = (-len(x)) % batch
    if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    return [x[i:i + batch] for i in range(0, len(x), batch)]


def run_batched(run, x: np.ndarray, batch: int) -> Outputs:
    """Apply ``run`` (batch -> {output name: batch}) to every sample of ``x`` at the fixed ``batch`` size."""
    results = [run(b) for b in batched(x, batch)]
    return {name: np.concatenate([r[name] for r in results])[: len(x)] for name in results[0]}


def golden_outputs(golden) -> Outputs:
    """The reference outputs of a golden file (``outputs.NAME`` arrays, in the manifest's order)."""
    return {key.removeprefix("outputs."): golden[key] for key in golden.files if key.startswith("outputs.")}


GOLDEN_FOLDER = "golden"  # a bundle's golden tensors: raw little-endian float32, as C++ reads them without a zip parser


def write_golden(folder, inputs: np.ndarray, outputs: Outputs) -> dict:
    """Write a bundle's golden inputs and reference outputs as raw little-endian float32 files under
    ``folder``/golden; the manifest entry listing each file with its shape and dtype."""
    from pathlib import Path

    (Path(folder) / GOLDEN_FOLDER).mkdir()

    def raw(name: str, array: np.ndarray) -> dict:
        file = f"{GOLDEN_FOLDER}/{name}.bin"
        np.ascontiguousarray(array, dtype="<f4").tofile(Path(folder) / file)
        return {"file": file, "shape": list(array.shape), "dtype": "float32"}

    return {"inputs": raw("inputs", inputs), "outputs": {n: raw(f"outputs.{n}", y) for n, y in outputs.items()}}


def read_golden(folder, manifest: dict) -> tuple[np.ndarray, Outputs]:
    """The golden inputs and reference outputs a bundle's manifest lists (:func:`write_golden`), refusing
    (ValueError, one line) any that is not a plain finite float32 array of the model's input and output
    shapes: golden data is data, never anything a loader interprets."""
    from pathlib import Path

    entry = manifest["bundle"]["golden"]
    described = {"inputs": manifest["input"], **{f"outputs.{o['name']}": o for o in manifest["outputs"]}}

    def raw(name: str, item: dict, samples: int | None) -> np.ndarray:
        file, shape = item.get("file"), item.get("shape")
        if item.get("dtype") != "float32":
            raise ValueError(f"golden {file} is {item.get('dtype')}, not float32")
        if not (isinstance(shape, list) and shape and all(type(d) is int and d > 0 for d in shape)):
            raise ValueError(f"golden {file} has shape {shape!r}, not a list of positive sizes")
        if shape[1:] != list(described[name]["shape"][1:]) or samples not in (None, shape[0]):
            rest = ", ".join(map(str, described[name]["shape"][1:]))
            raise ValueError(f"golden {file} has shape {shape}, the model's {name} is [{samples or 'N'}, {rest}]")
        path = Path(folder) / file
        size, expected = path.stat().st_size, int(np.prod(shape)) * 4
        if size != expected:
            raise ValueError(f"golden {file} has {size} bytes, its shape {shape} needs {expected}")
        array = np.fromfile(path, dtype="<f4").reshape(shape)
        if not np.isfinite(array).all():
            raise ValueError(f"golden {file} holds NaN or Inf values")
        return array

    if not (isinstance(entry.get("inputs"), dict) and isinstance(entry.get("outputs"), dict)):
        raise ValueError("the manifest's golden entry lists no inputs and outputs")
    if list(entry["outputs"]) != [o["name"] for o in manifest["outputs"]]:
        raise ValueError(f"golden outputs {', '.join(entry['outputs'])} are not the model's "
                         f"{', '.join(o['name'] for o in manifest['outputs'])}")
    inputs = raw("inputs", entry["inputs"], None)
    return inputs, {n: raw(f"outputs.{n}", item, len(inputs)) for n, item in entry["outputs"].items()}


def golden_arrays(outputs: Outputs, inputs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The arrays a golden file holds (the inputs, if given, and each output), for ``np.savez``."""
    return {**({} if inputs is None else {"inputs": inputs}), **{f"outputs.{n}": y for n, y in outputs.items()}}
