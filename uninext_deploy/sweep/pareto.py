"""A sweep over several models, as data: each model's optimize result and folder, and the Pareto front of
latency against cosine to PyTorch across models and within each (``sweep.json`` is this)."""

from __future__ import annotations

from dataclasses import dataclass

from ..results import Candidate, OptimizeResult

SWEEP = "sweep.json"


@dataclass(frozen=True)
class Point:
    """A candidate that meets the budget: its model, name, p50 where it ranks (the device's, else here) and its
    worst photo's cosine to PyTorch."""

    model: str
    candidate: str
    p50_ms: float
    cosine: float
    winner: bool  # its model's winner

    def as_dict(self) -> dict:
        return {"model": self.model, "candidate": self.candidate, "p50_ms": self.p50_ms, "cosine": self.cosine,
                "winner": self.winner}


def front(points: list[Point]) -> list[Point]:
    """The points no other beats on both axes (faster or as fast, and as close to PyTorch or closer, one of
    them strictly), fastest first."""
    kept = [p for p in points if not any(
        q.p50_ms <= p.p50_ms and q.cosine >= p.cosine and (q.p50_ms < p.p50_ms or q.cosine > p.cosine)
        for q in points)]
    return sorted(kept, key=lambda p: p.p50_ms)


@dataclass
class Sweep:
    results: list[OptimizeResult]
    folders: list[str]  # each result's folder, relative to the sweep's ("." for a sweep of one)

    def points(self, result: OptimizeResult | None = None) -> list[Point]:
        """Every candidate within the budget, of ``result`` (None: of every model)."""
        found = []
        for r in ([result] if result is not None else self.results):
            for candidate in r.candidates:
                if candidate.passed and candidate.photos is not None:
                    found.append(_point(r, candidate))
        return found

    @property
    def front(self) -> list[Point]:
        """The Pareto front across models."""
        return front(self.points())

    def as_dict(self) -> dict:
        return {"models": [r.model for r in self.results], "folders": self.folders,
                "budget": self.results[0].budget if self.results else {},
                "device": next((r.device["name"] for r in self.results if r.device), None),
                "front": [p.as_dict() for p in self.front],
                "per_model": {r.model: {"winner": r.best.name if r.best else None, "note": r.note,
                                        "front": [p.as_dict() for p in front(self.points(r))]}
                              for r in self.results}}


def _point(result: OptimizeResult, candidate: Candidate) -> Point:
    return Point(result.model, candidate.name, candidate.ranked_latency.p50_ms, candidate.photos.cosine,
                 candidate is result.best)
