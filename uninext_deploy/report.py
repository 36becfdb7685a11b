"""Reports of an optimize run: ``results.json`` (the data), ``report.md`` and a self-contained
``report.html`` (inline CSS, inline SVG plots, no network), plus the plots as SVG files for the Markdown.

Plots: latency against cosine to PyTorch for every candidate, with the budget line; the winner's time
by operator type, with its slowest layers as a table.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .arm.platforms import host_platform
from .results import RESULTS, OptimizeResult

SCATTER = "latency_vs_cosine.svg"
LAYERS = "winner_layers.svg"
TOP_LAYERS = 15


def write_report(result: OptimizeResult, folder: Path) -> list[Path]:
    """Write results.json, report.md, report.html and the SVG plots (over a fleet, one more per device) into
    ``folder`` (each file atomically)."""
    return write_files(folder, {RESULTS: json.dumps(result.as_dict(), indent=1, default=str) + "\n",
                                SCATTER: scatter_svg(result), LAYERS: layers_svg(result),
                                **{device_plot(name): scatter_svg(result, device=name) for name in fleet_timed(result)},
                                "report.md": markdown(result), "report.html": page(result)})


def write_files(folder: Path, files: dict[str, str]) -> list[Path]:
    """Each {name: text} into ``folder``, each atomically (staged beside it, then renamed)."""
    written = []
    for name, text in files.items():
        path = Path(folder) / name
        staged = path.with_name(f".{name}.{os.getpid()}.tmp")
        staged.write_text(text)
        os.replace(staged, path)
        written.append(path)
    return written


def _budget_text(result: OptimizeResult) -> str:
    (metric, (bound, _)), = result.budget.items()
    if metric == "top1":
        return f"top-1 drop <= {100 * (1 - bound):g}% (vs PyTorch, on the photos)"
    return f"cosine >= {bound:g} (worst photo and worst output, vs PyTorch)"


def _context(result: OptimizeResult) -> str:
    text = (f"Input {result.input_shape}, {result.threads} threads, machine {result.machine}; latency measured here, "
            f"every candidate and PyTorch eager in turns. PyTorch eager p50 {result.eager.p50_ms:.2f} ms; "
            f"{result.gmacs:.3f} GMACs per run.")
    if result.platform != host_platform():
        text += (f" Target platform {result.platform}: the winner's bundle is verified there under emulation "
                 "(parity only: emulated latency means nothing).")
    if result.fleet:
        timed = fleet_timed(result)
        text += (f" Timed on {len(timed)} of {len(result.fleet)} devices too, every candidate's bundle by its run.py "
                 "--bench, in turns on each device at once; each device's p50 picks its winner, the p50 where a "
                 "candidate is slowest ranks the one artifact for them all.")
    if result.device:
        d = result.device
        text += (f" Timed on the device too, {d['name']} ({d['machine']}, {d['cpu']}): every candidate's bundle by "
                 "its run.py --bench, in turns; the device's p50 picks the winner."
                 + "".join(f" Warning: {w}." for w in d["warnings"]))
    return text


def rows(result: OptimizeResult) -> list[dict]:
    """One row per candidate: the numbers both reports show."""
    table = []
    for i, c in enumerate(result.candidates):
        lat, there = c.latency, c.device_latency
        verdict = ("skipped" if c.skipped else "error" if c.error else "WINNER" if i == result.winner else
                   "pass" if c.passed else "fail")
        table.append({
            "candidate": c.name, "p50": lat.p50_ms if lat else None, "p90": lat.p90_ms if lat else None,
            "p99": lat.p99_ms if lat else None, "device_p50": there.p50_ms if there else None,
            "device_p90": there.p90_ms if there else None, "speedup": result.eager.p50_ms / lat.p50_ms if lat else None,
            "roofline": c.roofline_pct, "peak_rss": c.peak_rss_mb, "size": c.artifact_mb, "cosine": c.photos.cosine if c.photos else None,
            "max_abs": c.photos.max_abs if c.photos else None, "top1": c.photos.top1 if c.photos else None,
            "top5": c.photos.top5 if c.photos else None, "verdict": verdict,
            "why": c.skipped or c.error or "; ".join([*map(str, c.failed)] + ([f"bundle: {c.bundle_error}"]
                                                                              if c.bundle_error else [])),
            "detail": f"{len(c.float_blocks)} block(s) back in float: {', '.join(c.float_blocks)}" if c.float_blocks
            else "",
            **{f"at:{name}": c.fleet_latency[name].p50_ms if name in c.fleet_latency else None
               for name in fleet_timed(result)}})
    return table


def fleet_timed(result: OptimizeResult) -> list[str]:
    """The names of a fleet's devices that timed the candidates."""
    return [d["name"] for d in result.timed_devices]


def cell(row: dict, key: str, spec: str) -> str:
    """A row's value as the reports show it (empty when absent)."""
    value = row[key]
    if value is None:
        return ""
    return format(value, spec) + ("x" if key == "speedup" else "")


COLUMNS = [("candidate", "candidate", "s"), ("p50 ms", "p50", ".2f"), ("p90 ms", "p90", ".2f"),
           ("p99 ms", "p99", ".2f"), ("vs eager", "speedup", ".2f"), ("% GEMM roofline", "roofline", ".1f"),
           ("peak RSS MB", "peak_rss", ".0f"), ("size MB", "size", ".1f"),
           ("cosine", "cosine", ".6f"), ("max abs", "max_abs", ".2e"), ("top-1", "top1", ".2f"),
           ("top-5", "top5", ".2f"), ("verdict", "verdict", "s")]
DEVICE_COLUMNS = [("device p50 ms", "device_p50", ".2f"), ("device p90 ms", "device_p90", ".2f")]


def columns(result: OptimizeResult) -> list[tuple[str, str, str]]:
    """The table's columns: the device's latency beside this machine's where candidates were timed there; over a
    fleet, each device's p50 and the slowest."""
    if result.fleet:
        return [*COLUMNS[:4], *[(f"{name} p50 ms", f"at:{name}", ".2f") for name in fleet_timed(result)],
                ("slowest device p50 ms", "device_p50", ".2f"), *COLUMNS[4:]]
    return [*COLUMNS[:4], *DEVICE_COLUMNS, *COLUMNS[4:]] if result.device else COLUMNS


def fleet_rows(result: OptimizeResult) -> list[dict]:
    """Over a fleet, one row per device: its winner and p50 there, its bundle, state, or why it has none."""
    table = []
    for d in result.fleet or []:
        winner = result.candidates[d["winner"]] if d.get("winner") is not None else None
        state = d.get("state") or {}
        table.append({"device": d["name"], "architecture": d.get("platform", ""), "cpu": d.get("cpu", ""),
                      "winner": winner.name if winner else "", "p50": winner.fleet_latency[d["name"]].p50_ms
                      if winner else None, "temperature": state.get("temperature_c"),
                      "bundle": d.get("bundle", ""), "why": d.get("error") or d.get("bundle_error")
                      or "; ".join(d.get("warnings") or []) or ("" if winner else "no candidate met the budget")})
    return table


def _fleet_markdown(result: OptimizeResult) -> list[str]:
    if not result.fleet:
        return []
    pick = result.best.name if result.best else "none"
    bundles = ("a bundle per device's winner" if result.pick == "each-device" else
               "one bundle: the best where it is slowest")
    lines = ["", f"## On each device ({bundles})",
             "", f"Best where it is slowest: **{pick}**"
             + (f", {result.best.device_latency.p50_ms:.2f} ms on its slowest device" if result.best and
                result.best.device_latency else ""), "",
             "| device | architecture | CPU | its winner | p50 ms there | °C | bundle | why not / warnings |",
             "|---|---|---|---|---|---|---|---|"]
    for r in fleet_rows(result):
        lines.append(f"| {r['device']} | {r['architecture']} | {r['cpu']} | {r['winner']} | "
                     f"{'' if r['p50'] is None else format(r['p50'], '.2f')} | "
                     f"{'' if r['temperature'] is None else format(r['temperature'], '.0f')} | {r['bundle']} | "
                     f"{r['why']} |")
    lines += [""] + [f"![latency vs cosine on {name}]({device_plot(name)})" for name in fleet_timed(result)]
    return lines


def _fleet_html(result: OptimizeResult) -> str:
    if not result.fleet:
        return ""
    head = "".join(f"<th>{t}</th>" for t in ("device", "architecture", "CPU", "its winner", "p50 ms there", "°C",
                                              "bundle", "why not / warnings"))

    def shown(v) -> str:
        return html.escape("" if v is None else format(v, ".2f") if isinstance(v, float) else str(v))

    body = "".join("<tr>" + "".join(f"<td>{shown(v)}</td>" for v in (
        r["device"], r["architecture"], r["cpu"], r["winner"], r["p50"], r["temperature"], r["bundle"], r["why"]))
        + "</tr>" for r in fleet_rows(result))
    plots = "".join(f"<h3>On {html.escape(name)}</h3>{scatter_svg(result, device=name)}"
                    for name in fleet_timed(result))
    return (f'<h2>On each device</h2><table id="devices"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            f'</table>{plots}')


def device_plot(name: str) -> str:
    """The file of a fleet device's latency-against-cosine plot."""
    return f"latency_vs_cosine_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.svg"


def markdown(result: OptimizeResult) -> str:
    best, table = result.best, rows(result)
    lines = [f"# {result.model}: fastest artifact within {_budget_text(result)}", "",
             _context(result),
             "", f"**Winner: {best.name}**, p50 {best.latency.p50_ms:.2f} ms "
             f"({result.eager.p50_ms / best.latency.p50_ms:.2f}x eager)"
             + (f", on {result.device['name']} {best.device_latency.p50_ms:.2f} ms" if result.device else
                f", {best.device_latency.p50_ms:.2f} ms on its slowest device" if best.device_latency else "")
             + f", cosine {best.photos.cosine:.6f}"
             + (f"; bundle `{result.bundle}`" if result.bundle else "") if best else f"**No winner**: {result.note}",
             *(["", f"**Note:** {result.class_change}"] if result.class_change else []),
             "", "| " + " | ".join(c[0] for c in columns(result)) + " |", "|" + "---|" * len(columns(result))]
    for row in table:
        cells = [cell(row, key, spec) for _, key, spec in columns(result)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {r['candidate']}: {text}" for r in table for text in (r["why"], r["detail"]) if text]
    if notes:
        lines += ["", "Notes (misses, errors, INT8 float fallback):", *notes]
    lines += ["", "% GEMM roofline: the model's MACs x 2 / p50, over the best GFLOP/s of a 1024^3 MatMul on the same "
              "runtime, precision and threads on this machine (cached per machine).", "",
              f"![latency vs cosine]({SCATTER})", "", *_fleet_markdown(result)]
    if result.layers:
        lines += [f"## Where the winner's time goes ({best.name if best else ''})", "", f"![time by operator]({LAYERS})",
                  "", "| slowest layers | op | ms | % |", "|---|---|---|---|"]
        lines += [f"| {name} | {op} | {ms:.3f} | {pct:.1f} |" for name, op, ms, pct in top_layers(result)]
    return "\n".join(lines) + "\n"


def nines(cosine: float) -> float:
    """-log10(1 - cosine), capped: 0.99 -> 2, 0.9999 -> 4; spreads the cosines that matter."""
    return min(9.0, -math.log10(max(1e-9, 1.0 - cosine)))


@dataclass
class Plot:
    """A latency-against-cosine plot under way: cosine on a log scale of 1 - cosine (``nines``), p50 upwards,
    its frame and ticks drawn; ``sx``/``sy`` place a value, ``parts`` the SVG so far."""

    width: int
    height: int
    x_lo: float
    x_hi: float
    y_hi: float
    left: int = 70
    right: int = 140  # room on the right for labels
    top: int = 20
    bottom: int = 50

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    def sx(self, v: float) -> float:
        return self.left + (v - self.x_lo) / max(self.x_hi - self.x_lo, 1e-9) * self.plot_w

    def sy(self, v: float) -> float:
        return self.top + self.plot_h - v / self.y_hi * self.plot_h

    @classmethod
    def framed(cls, xs: list[float], ys: list[float], width: int, height: int, label: str,
               right: int = 140) -> tuple["Plot", list[str]]:
        """The plot of cosines ``xs`` (as nines) and latencies ``ys``, with its frame, ticks and grid drawn."""
        x_lo, x_hi = (math.floor(min(xs)), math.ceil(max(xs)) + 0.5) if xs else (0, 1)
        plot = cls(width, height, x_lo, x_hi, max(ys or [1.0]) * 1.1, right=right)
        left, top, plot_w, plot_h, sx, sy = plot.left, plot.top, plot.plot_w, plot.plot_h, plot.sx, plot.sy
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                 f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img" '
                 f'aria-label="{label}">',
                 f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>']
        for tick in range(int(x_lo), int(math.ceil(x_hi)) + 1):
            if x_lo <= tick <= x_hi:
                text = "0" if tick == 0 else f"0.{'9' * tick}"
                parts.append(f'<line x1="{sx(tick):.1f}" y1="{top + plot_h}" x2="{sx(tick):.1f}" '
                             f'y2="{top + plot_h + 4}" stroke="#666"/><text x="{sx(tick):.1f}" y="{top + plot_h + 16}" '
                             f'text-anchor="middle">{text}</text>')
        for i in range(5):
            value = plot.y_hi * i / 4
            parts.append(f'<text x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="end">{value:.1f}</text>'
                         f'<line x1="{left}" y1="{sy(value):.1f}" x2="{left + plot_w}" y2="{sy(value):.1f}" '
                         'stroke="#eee"/>')
        return plot, parts

    def axes_titles(self, x_title: str) -> str:
        return (f'<text x="{self.left + self.plot_w / 2}" y="{self.height - 10}" text-anchor="middle">{x_title}</text>'
                f'<text x="16" y="{self.top + self.plot_h / 2}" text-anchor="middle" transform="rotate(-90 16 '
                f'{self.top + self.plot_h / 2})">p50 latency (ms)</text></svg>')


def scatter_svg(result: OptimizeResult, width: int = 760, height: int = 360, device: str | None = None) -> str:
    """Every candidate's p50 (here; ``device``: on that device of a fleet) against its cosine to PyTorch."""
    def p50(c):
        there = c.fleet_latency.get(device) if device else c.latency
        return there.p50_ms if there else None

    points = [(c, nines(c.photos.cosine), p50(c)) for c in result.candidates if p50(c) is not None and c.photos]
    xs = [p[1] for p in points] + [nines(bound) for metric, (bound, _) in result.budget.items() if metric == "cosine"]
    plot, parts = Plot.framed(xs, [p[2] for p in points] + [result.eager.p50_ms], width, height,
                              "latency against cosine to PyTorch")
    left, top, plot_w, plot_h, sx, sy = plot.left, plot.top, plot.plot_w, plot.plot_h, plot.sx, plot.sy
    parts.append(f'<line x1="{left}" y1="{sy(result.eager.p50_ms):.1f}" x2="{left + plot_w}" '
                 f'y2="{sy(result.eager.p50_ms):.1f}" stroke="#888" stroke-dasharray="4 3"/>'
                 f'<text x="{left + plot_w - 4}" y="{sy(result.eager.p50_ms) - 4:.1f}" text-anchor="end" '
                 f'fill="#666">PyTorch eager</text>')
    for metric, (bound, _) in result.budget.items():
        if metric == "cosine":
            parts.append(f'<line x1="{sx(nines(bound)):.1f}" y1="{top}" x2="{sx(nines(bound)):.1f}" '
                         f'y2="{top + plot_h}" stroke="#c33" stroke-dasharray="5 3"/><text x="{sx(nines(bound)) + 4:.1f}" '
                         f'y="{top + 12}" fill="#c33">budget {bound:g}</text>')
    placed: list[tuple[float, float, float]] = []  # label boxes (x, y, width) already drawn
    device_winner = next((d.get("winner") for d in result.fleet or [] if d["name"] == device), None)
    for c, x, y in points:
        color = "#1a7f37" if c.passed else "#cf222e"
        winner = result.best is c if device is None else (device_winner is not None and
                                                           result.candidates[device_winner] is c)
        label_x, label_w = sx(x) + 9, 6.2 * len(c.name)
        label_y = next((sy(y) + dy for dy in (4, -9, 17, -22, 30, -35, 43)
                        if not any(abs(sy(y) + dy - py) < 12 and label_x < px + pw and px < label_x + label_w
                                   for px, py, pw in placed)), sy(y) + 4)
        placed.append((label_x, label_y, label_w))
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{7 if winner else 5}" fill="{color}" '
                     f'stroke="{"#000" if winner else "none"}" stroke-width="2"><title>{html.escape(c.name)}: '
                     f'{y:.2f} ms, cosine {c.photos.cosine:.6f}</title></circle>'
                     f'<text x="{label_x:.1f}" y="{label_y:.1f}">{html.escape(c.name)}</text>')
    parts.append(plot.axes_titles("cosine to PyTorch (worst photo; log scale of 1 - cosine)"))
    return "".join(parts) + "\n"


def op_totals(layers: list[dict]) -> list[tuple[str, float, int]]:
    """(op type, ms, layer count) summed over the profile, slowest first."""
    totals: dict[str, list] = {}
    for layer in layers:
        entry = totals.setdefault(layer["op"], [0.0, 0])
        entry[0] += layer["ms"]
        entry[1] += 1
    return sorted(((op, ms, n) for op, (ms, n) in totals.items()), key=lambda t: -t[1])


def layers_svg(result: OptimizeResult, width: int = 640) -> str:
    """The winner's profiled time summed by operator type (after the runtime's fusions)."""
    bars = [(f"{op} x{n}", ms) for op, ms, n in op_totals(result.layers)][:TOP_LAYERS]
    if not bars:
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="320" height="30" font-family="sans-serif" '
                'font-size="12"><text x="4" y="20">no per-layer profile</text></svg>\n')
    label_w, row_h, top = 200, 18, 10
    height = top + row_h * len(bars) + 30
    peak = max(ms for _, ms in bars) or 1.0
    total = sum(layer["ms"] for layer in result.layers) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             'font-family="sans-serif" font-size="11" role="img" aria-label="time per operator type of the winner">']
    for i, (name, ms) in enumerate(bars):
        y = top + i * row_h
        bar = (width - label_w - 130) * ms / peak
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{html.escape(name)}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{bar:.1f}" height="{row_h - 5}" fill="#0969da"/>'
                     f'<text x="{label_w + bar + 4:.1f}" y="{y + 12}">{ms:.3f} ms ({100 * ms / total:.1f}%)</text>')
    parts.append(f'<text x="{label_w}" y="{height - 8}">ms per run by operator type (runtime profiler, which adds '
                 'overhead)</text></svg>')
    return "".join(parts) + "\n"


def top_layers(result: OptimizeResult) -> list[tuple[str, str, float, float]]:
    total = sum(layer["ms"] for layer in result.layers) or 1.0
    return [(layer["name"], layer["op"], layer["ms"], 100 * layer["ms"] / total) for layer in result.layers[:TOP_LAYERS]]


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#1f2328}
table{border-collapse:collapse;font-size:13px}th,td{padding:4px 8px;border-bottom:1px solid #ddd;text-align:right}
th{cursor:pointer;background:#f6f8fa;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
tr.WINNER{background:#dafbe1;font-weight:600}tr.fail td:last-child,tr.error td:last-child{color:#cf222e}
.note{color:#57606a;font-size:13px}"""

# Click a header to sort; the script marks the page ready so a browser test can tell it ran without error.
SCRIPT = """document.querySelectorAll('th').forEach(function(th, col){th.addEventListener('click', function(){
var body = th.closest('table').tBodies[0]; var rows = Array.from(body.rows);
var num = function(r){var v = parseFloat(r.cells[col].dataset.v); return isNaN(v) ? Infinity : v;};
var text = rows.every(function(r){return r.cells[col].dataset.v === undefined;});
rows.sort(function(a, b){return text ? a.cells[col].textContent.localeCompare(b.cells[col].textContent)
: num(a) - num(b);}); rows.forEach(function(r){body.appendChild(r);});});});
document.body.dataset.ready = 'yes';"""


def page(result: OptimizeResult) -> str:
    best, table = result.best, rows(result)
    head = "".join(f"<th>{html.escape(title)}</th>" for title, _, _ in columns(result))
    body = []
    for row in table:
        cells = []
        for _, key, spec in columns(result):
            value, shown = row[key], cell(row, key, spec)
            data = f' data-v="{value}"' if isinstance(value, float) else ""
            title = f' title="{html.escape(row["why"])}"' if key == "verdict" and row["why"] else ""
            cells.append(f"<td{data}{title}>{html.escape(shown)}</td>")
        body.append(f'<tr class="{row["verdict"]}">{"".join(cells)}</tr>')
    summary = (f"Winner: <b>{html.escape(best.name)}</b>, p50 {best.latency.p50_ms:.2f} ms "
               f"({result.eager.p50_ms / best.latency.p50_ms:.2f}x PyTorch eager), cosine {best.photos.cosine:.6f}"
               + (f"; bundle <code>{html.escape(result.bundle)}</code>" if result.bundle else "")
               if best else f"No winner: {html.escape(result.note)}")
    if result.class_change:
        summary += f"<br><b>Note:</b> {html.escape(result.class_change)}"
    notes = "".join(f"<li>{html.escape(r['candidate'])}: {html.escape(text)}</li>" for r in table
                    for text in (r["why"], r["detail"]) if text)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(result.model)} optimize report</title>
<style>{STYLE}</style></head><body>
<h1>{html.escape(result.model)}: fastest artifact within {html.escape(_budget_text(result))}</h1>
<p>{summary}</p>
<p class="note">{html.escape(_context(result))}</p>
<table id="candidates"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
{f"<ul class='note'>{notes}</ul>" if notes else ""}
<p class="note">% GEMM roofline: the model's MACs x 2 / p50 over the best GFLOP/s of a 1024^3 MatMul on the same
runtime, precision and threads on this machine (cached per machine).</p>
<h2>Latency against cosine to PyTorch</h2>
{scatter_svg(result)}
{_fleet_html(result)}
<h2>Where the winner's time goes{f" ({html.escape(best.name)})" if best else ""}</h2>
{layers_svg(result)}
<table id="layers"><thead><tr><th>slowest layers</th><th>op</th><th>ms</th><th>%</th></tr></thead><tbody>
{"".join(f'<tr><td>{html.escape(n)}</td><td>{html.escape(o)}</td><td data-v="{ms}">{ms:.3f}</td><td data-v="{pct}">'
         f'{pct:.1f}</td></tr>' for n, o, ms, pct in top_layers(result))}</tbody></table>
<script>{SCRIPT}</script>
</body></html>
"""
