"""Compare outputs with reference outputs: metrics, per-precision tolerances, structured verdicts.

numpy only, so the same comparison runs on the host, under ARM emulation and on the device: bundles ship
this file verbatim as ``compare.py``. Tolerances follow the anchor tools' practice: tight elementwise for
FP32 (Polygraphy's default atol/rtol scale), statistical (cosine) for FP16, task-level (cosine, top-1
agreement) for INT8.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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


@dataclass
class Metrics:
    samples: int
    max_abs: float
    mean_abs: float
    rel_max_abs: float  # max_abs / max |reference|: comparable across models with different logit scales
    cosine: float  # the worst per-sample cosine similarity
    sqnr_db: float
    top1: float  # fraction of samples whose arg-max agrees
    top5: float  # mean overlap of the top-5 sets, in [0, 1]
    top1_decisive: float  # top-1 agreement over samples whose reference margin (top-1 minus top-2 logit)
    # exceeds twice the typical deviation (99th percentile of |error|): a flip there needs an outlier error,
    # a real disagreement; a flip of a near-tie within the typical deviation is not counted

    def as_dict(self) -> dict:
        return asdict(self)


def compare(reference: np.ndarray, output: np.ndarray) -> Metrics:
    """Metrics of ``output`` against ``reference``, both (samples, classes)."""
    ref = reference.astype(np.float64).reshape(len(reference), -1)
    out = output.astype(np.float64).reshape(len(output), -1)
    if ref.shape != out.shape:
        raise ValueError(f"output shape {output.shape} differs from reference {reference.shape}")
    err = out - ref
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cosine = np.where(norms > 0, (ref * out).sum(axis=1) / np.maximum(norms, 1e-300), 0.0)
    noise = float((err**2).sum())
    k = min(5, ref.shape[1])
    top_ref, top_out = np.argsort(-ref, axis=1)[:, :k], np.argsort(-out, axis=1)[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(top_ref, top_out)]
    if not np.isfinite(out).all():
        return Metrics(len(ref), float("inf"), float("inf"), float("inf"), -1.0, float("-inf"), 0.0, 0.0, 0.0)
    ordered = np.sort(ref, axis=1)
    margin = ordered[:, -1] - ordered[:, -2] if ref.shape[1] > 1 else np.full(len(ref), np.inf)
    decisive = margin > 2 * np.percentile(np.abs(err), 99)
    agree = top_ref[:, 0] == top_out[:, 0]
    return Metrics(
        samples=len(ref),
        max_abs=float(np.abs(err).max()),
        mean_abs=float(np.abs(err).mean()),
        rel_max_abs=float(np.abs(err).max() / max(np.abs(ref).max(), 1e-300)),
        cosine=float(cosine.min()),
        sqnr_db=float("inf") if noise == 0 else float(10 * np.log10((ref**2).sum() / noise)),
        top1=float(agree.mean()),
        top5=float(np.mean(overlap)),
        top1_decisive=float(agree[decisive].mean()) if decisive.any() else 1.0,
    )


@dataclass(frozen=True)
class Miss:
    """One metric outside its bound: ``value`` of ``metric`` against ``bound`` ("min": must be >=, "max": must
    be <=), on the input set ``inputs`` ("images", "random", "arm images", "arm vs x86", "golden", ...)."""

    metric: str
    value: float
    bound: float
    kind: str
    inputs: str = ""

    def __str__(self) -> str:
        where = f"{self.inputs}: " if self.inputs else ""
        return f"{where}{self.metric} {self.value:.6g} {'<' if self.kind == 'min' else '>'} {self.bound:g}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Miss":
        return cls(**data)


def failures(metrics: Metrics, tolerance: dict[str, tuple[float, str]], inputs: str = "") -> list[Miss]:
    """How ``metrics`` (of the input set ``inputs``) misses ``tolerance``; empty when it passes."""
    misses = []
    for name, (bound, kind) in tolerance.items():
        value = getattr(metrics, name)
        if (kind == "min" and not value >= bound) or (kind == "max" and not value <= bound):
            misses.append(Miss(name, float(value), float(bound), kind, inputs))
    return misses


def bounds_text(tolerance: dict[str, tuple[float, str]]) -> str:
    """"cosine >= 0.99, rel_max_abs <= 0.0001": a tolerance as people read it."""
    return ", ".join(f"{k} {'>=' if kind == 'min' else '<='} {b:g}" for k, (b, kind) in tolerance.items())


def verdict(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, reference: np.ndarray, batch: int,
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


def run_batched(run, x: np.ndarray, batch: int) -> np.ndarray:
    """Apply ``run`` (batch -> batch) to every sample of ``x`` at the fixed ``batch`` size."""
    return np.concatenate([run(b) for b in batched(x, batch)])[: len(x)]
