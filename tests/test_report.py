"""Reports of an optimize run: the candidates table and plots, re-rendering from results.json, and the page
in a real browser (headless Chromium)."""

import re
import shutil
import subprocess

import pytest

from conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_reports_hold_the_candidates_table_and_plots(optimized):
    out, _, result = optimized
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for c in result.candidates:
        assert f"| {c.name} | {c.latency.p50_ms:.2f} |" in md
    assert md.count("| WINNER |") == 1 and "![latency vs cosine](latency_vs_cosine.svg)" in md
    assert page.count("<tr class=") == len(result.candidates) and "<svg" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # self-contained: nothing fetched
    for svg in ("latency_vs_cosine.svg", "winner_layers.svg"):
        assert (out / svg).read_text().startswith("<svg")


def test_report_regenerates_the_same_files_from_results_json(optimized, tmp_path):
    out, _, _ = optimized
    result = run_cli("report", str(out / "results.json"), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in ("report.md", "report.html", "latency_vs_cosine.svg", "winner_layers.svg"):
        assert (tmp_path / name).read_text() == (out / name).read_text()
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    assert "is not a results.json" in run_cli("report", str(broken)).stderr


def open_in_browser(page, profile) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the console errors, from headless Chromium."""
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                             "--no-first-run", "--disable-background-networking", "--disable-component-update",
                             "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                             "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or
                                                                                    "Error" in line)]
    return result.stdout, errors


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium chromium-driver; "
                                              ".ci/run installs it)")
def test_html_report_opens_in_headless_chromium_without_errors(optimized, tmp_path):
    out, _, result = optimized
    dom, errors = open_in_browser(out / "report.html", tmp_path / "profile")
    assert errors == [] and 'data-ready="yes"' in dom
    assert dom.count("<tr class=") == len(result.candidates) and dom.count("<circle") == len(result.candidates)
    broken = tmp_path / "broken.html"  # the check itself catches a script error
    broken.write_text((out / "report.html").read_text().replace("document.body.dataset.ready", "undefinedThing.x"))
    dom, errors = open_in_browser(broken, tmp_path / "profile2")
    assert errors and 'data-ready="yes"' not in dom


def test_report_without_results_says_so_and_names_optimize_instead_of_searching(tmp_path, monkeypatch):
    from conftest import invoke

    monkeypatch.chdir(tmp_path)
    result = invoke("report")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("error: no results.json under ./optimized to report on; run `uninext-deploy "
                                     "optimize` first, or pass the results.json of an earlier run")
    assert list(tmp_path.iterdir()) == []


def test_a_winner_that_changes_a_photos_class_is_said_so(optimized):
    """A cosine budget can pass a winner that flips a photo's class (ConvMLP-S at 96 px: top-1 agreement 0.90):
    both reports and the summary say how many, and how to keep every class."""
    import copy
    import dataclasses

    from uninext_deploy.report import markdown, page

    _, _, result = optimized
    assert result.class_change is None or "top-1 agreement" in result.class_change
    flipped = copy.deepcopy(result)
    winner = flipped.candidates[flipped.winner]
    winner.photos = dataclasses.replace(winner.photos, top1=1.0 - 1.0 / winner.photos.samples)
    said = (f"the winner changes the top-1 class of 1 of {winner.photos.samples} photos (top-1 agreement "
            f"{winner.photos.top1:.2f}); --max-top1-drop 0 keeps every photo's class")
    assert flipped.class_change == said
    assert f"**Note:** {said}" in markdown(flipped) and "keeps every photo&#x27;s class" in page(flipped)
