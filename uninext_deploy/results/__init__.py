"""What runs found, kept: an optimize run's candidates and winner (optimized.py, its results.json), and every
timing of a bundle on a device in one SQLite database (store.py, which `uninext-deploy results` queries)."""

from .optimized import RESULTS, Candidate, OptimizeResult, budget_tolerance

__all__ = ["RESULTS", "Candidate", "OptimizeResult", "budget_tolerance"]
