"""The Pareto front of a sweep (sweep/pareto.py): latency against cosine, across models and within each."""

from __future__ import annotations

from uninext_deploy.sweep.pareto import Point, front


def _point(model: str, p50: float, cosine: float) -> Point:
    return Point(model, f"{model} at {p50}", p50, cosine, winner=False)


def test_the_front_keeps_what_nothing_beats_on_both_axes_fastest_first():
    fast_rough, slow_exact = _point("a", 1.0, 0.990), _point("b", 3.0, 0.9999)
    beaten = _point("a", 2.0, 0.980)  # slower and further from PyTorch than fast_rough
    middle = _point("b", 2.0, 0.995)
    tie = _point("c", 1.0, 0.990)  # equal on both: neither beats the other
    assert front([slow_exact, beaten, middle, fast_rough, tie]) == [fast_rough, tie, middle, slow_exact]
    assert front([]) == [] and front([beaten]) == [beaten]
