"""A sweep's own report beside the models' folders: sweep.json, sweep.md (the front across models, each model's
winner and front) and the plot of every candidate within the budget, latency against cosine, by model."""

from __future__ import annotations

import json
import math
import os
from html import escape
from pathlib import Path

from ..report import nines
from .pareto import SWEEP, Sweep, front

PLOT = "sweep_latency_vs_cosine.svg"
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


def write_sweep(swept: Sweep, folder: Path) -> list[Path]:
    files = {SWEEP: json.dumps(swept.as_dict(), indent=1) + "\n", PLOT: plot_svg(swept), "sweep.md": markdown(swept)}
    written = []
    for name, text in files.items():
        path = Path(folder) / name
        staged = path.with_name(f".{name}.{os.getpid()}.tmp")
        staged.write_text(text)
        os.replace(staged, path)
        written.append(path)
    return written


def markdown(swept: Sweep) -> str:
    where = next((f"on {r.device['name']}" for r in swept.results if r.device), "on this machine")
    budget = ", ".join(f"{metric} >= {bound}" for metric, (bound, _) in swept.results[0].budget.items())
    lines = [f"# Sweep of {', '.join(r.model for r in swept.results)}", "",
             f"Budget {budget} on the photos; latency p50 {where}, every model's candidates timed in one race.", "",
             "## Pareto front across models", "", "| model | candidate | p50 ms | cosine | its model's winner |",
             "|---|---|---|---|---|"]
    lines += [f"| {p.model} | {p.candidate} | {p.p50_ms:.3f} | {p.cosine:.6f} | {'yes' if p.winner else ''} |"
              for p in swept.front] or ["| no candidate met the budget | | | | |"]
    lines += ["", f"![latency against cosine]({PLOT})", "", "## Each model", "",
              "| model | winner | p50 ms | cosine | candidates within budget | its front | folder |",
              "|---|---|---|---|---|---|---|"]
    for result, folder in zip(swept.results, swept.folders):
        best, points = result.best, swept.points(result)
        winner = (f"{best.name} | {best.ranked_latency.p50_ms:.3f} | {best.photos.cosine:.6f}" if best
                  else f"{result.note} | | ")
        lines.append(f"| {result.model} | {winner} | {len(points)} of {len(result.candidates)} | "
                     f"{', '.join(p.candidate for p in front(points))} | [{folder}]({folder}/report.md) |")
    return "\n".join(lines) + "\n"


def plot_svg(swept: Sweep, width: int = 760, height: int = 380) -> str:
    points = swept.points()
    left, right, top, bottom = 70, 150, 20, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [nines(p.cosine) for p in points]
    x_lo, x_hi = (math.floor(min(xs)), math.ceil(max(xs)) + 0.5) if xs else (0, 1)
    y_hi = max([p.p50_ms for p in points] or [1.0]) * 1.1

    def sx(v):
        return left + (v - x_lo) / max(x_hi - x_lo, 1e-9) * plot_w

    def sy(v):
        return top + plot_h - v / y_hi * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} '
             f'{height}" font-family="sans-serif" font-size="11" role="img" aria-label="latency against cosine, '
             'by model">', f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
             'stroke="#999"/>']
    for tick in range(int(x_lo), int(math.ceil(x_hi)) + 1):
        if x_lo <= tick <= x_hi:
            label = "0" if tick == 0 else f"0.{'9' * tick}"
            parts.append(f'<text x="{sx(tick):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{label}</text>')
    for i in range(5):
        value = y_hi * i / 4
        parts.append(f'<text x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="end">{value:.1f}</text>')
    best = swept.front
    if len(best) > 1:
        parts.append('<polyline fill="none" stroke="#444" stroke-dasharray="4 3" points="'
                     + " ".join(f"{sx(nines(p.cosine)):.1f},{sy(p.p50_ms):.1f}" for p in best) + '"/>')
    models = [r.model for r in swept.results]
    for p in points:
        colour = COLOURS[models.index(p.model) % len(COLOURS)]
        parts.append(f'<circle cx="{sx(nines(p.cosine)):.1f}" cy="{sy(p.p50_ms):.1f}" r="{6 if p.winner else 4}" '
                     f'fill="{colour}"><title>{escape(p.model)} {escape(p.candidate)}: {p.p50_ms:.3f} ms, cosine '
                     f'{p.cosine:.6f}</title></circle>')
    for i, model in enumerate(models):
        parts.append(f'<circle cx="{left + plot_w + 16}" cy="{top + 10 + 16 * i}" r="4" '
                     f'fill="{COLOURS[i % len(COLOURS)]}"/><text x="{left + plot_w + 24}" y="{top + 14 + 16 * i}">'
                     f'{escape(model)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">cosine to PyTorch (worst '
                 'photo); dashed: the front across models; large: each model\'s winner</text>'
                 f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle" transform="rotate(-90 16 '
                 f'{top + plot_h / 2})">p50 latency (ms)</text></svg>')
    return "\n".join(parts) + "\n"
