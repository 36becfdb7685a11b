"""A sweep's own report beside the models' folders: sweep.json, sweep.md (the front across models, each model's
winner and front) and the plot of every candidate within the budget, latency against cosine, by model."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from ..report import Plot, nines, write_files
from .pareto import SWEEP, Sweep, front

PLOT = "sweep_latency_vs_cosine.svg"
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


def write_sweep(swept: Sweep, folder: Path) -> list[Path]:
    return write_files(folder, {SWEEP: json.dumps(swept.as_dict(), indent=1) + "\n", PLOT: plot_svg(swept),
                                "sweep.md": markdown(swept)})


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
    plot, parts = Plot.framed([nines(p.cosine) for p in points], [p.p50_ms for p in points], width, height,
                              "latency against cosine, by model", right=150)
    sx, sy = plot.sx, plot.sy
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
    legend_x = plot.left + plot.plot_w + 16
    for i, model in enumerate(models):
        parts.append(f'<circle cx="{legend_x}" cy="{plot.top + 10 + 16 * i}" r="4" fill="{COLOURS[i % len(COLOURS)]}"/>'
                     f'<text x="{legend_x + 8}" y="{plot.top + 14 + 16 * i}">{escape(model)}</text>')
    parts.append(plot.axes_titles("cosine to PyTorch (worst photo); dashed: the front across models; large: each "
                                  "model's winner"))
    return "\n".join(parts) + "\n"
