"""optimize and report: a small real search on ConvMLP-S, its choice, its bundle, its reports in a real
browser; the GEMM roofline micro-benchmark and its cache."""

import json
import re
import shutil
import subprocess

import numpy as np
import onnx
import pytest

from conftest import run_cli
from uninext_deploy import bundle as bundles
from uninext_deploy import optimize as search
from uninext_deploy import roofline
from uninext_deploy.device import runtimes
from uninext_deploy.errors import UserError

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def optimized(tmp_path_factory):
    """ConvMLP-S at 96 px: ORT and OpenVINO x FP32 and INT8, budget cosine >= 0.99, through the CLI."""
    out = tmp_path_factory.mktemp("optimize") / "convmlp_s"
    result = run_cli("optimize", "-m", "convmlp_s", "--input-size", "96", "96", "--targets", "ort,openvino",
                     "--precisions", "fp32", "--precisions", "int8", "--calib-methods", "percentile",
                     "--iters", "10", "--min-cosine", "0.99", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result.stdout, search.OptimizeResult.load(out / "results.json")


def test_optimize_picks_the_fastest_candidate_within_the_budget(optimized):
    out, stdout, result = optimized
    names = [c.name for c in result.candidates]
    assert names == ["ort fp32", "ort int8 (percentile)", "openvino fp32", "openvino int8"]
    best = result.best
    assert best is not None and best.photos.cosine >= 0.99 and best.passed
    assert all(best.latency.p50_ms <= c.latency.p50_ms for c in result.candidates if c.passed)
    assert all(c.latency and c.latency.runs == 10 for c in result.candidates)
    assert result.eager.runs == 10 and result.gmacs == pytest.approx(2.385 * (96 / 224) ** 2, rel=0.02)
    assert all(0 < c.roofline_pct < 100 for c in result.candidates)
    assert "WINNER" in stdout and "report.html" in stdout
    assert result.layers and {"name", "op", "ms"} <= set(result.layers[0])


def test_the_winner_is_written_as_a_verified_bundle(optimized):
    out, _, result = optimized
    folder = out / result.bundle
    assert (folder.with_name(folder.name + ".tar.gz")).is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["backend"] == bundles.get_backend(result.best.target).name
    assert manifest["precision"] == result.best.precision
    assert manifest["bundle"]["tolerance"] == {"cosine": [0.99, "min"]}  # the budget is what the device checks
    assert bundles.verify(folder).passed


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


def test_no_candidate_within_the_budget_is_a_failure_with_a_report(tmp_path):
    out = tmp_path / "none"
    result = run_cli("optimize", "-m", "convmlp_s", "--input-size", "64", "64", "--targets", "ort", "--precisions",
                     "fp16", "--min-cosine", "1.0", "--iters", "3", "--out", str(out))
    assert result.returncode == 1 and "no candidate met the budget" in result.stderr
    assert "**No winner**" in (out / "report.md").read_text()
    assert not list(out.glob("*.tar.gz"))


def test_int8_missing_the_budget_is_retried_with_float_fallback(tmp_path):
    result, _ = search.optimize("convmlp_s", input_size=96, targets=("ort",), precisions=("int8",),
                                calib_methods=("percentile",), min_cosine=0.995, iters=3, warmup=1,
                                out=tmp_path / "o", make_bundle=False)
    plain, fallback = result.candidates
    assert plain.failed and not plain.fallback and fallback.fallback
    assert fallback.float_blocks and not plain.float_blocks
    assert fallback.photos.cosine > plain.photos.cosine and fallback.passed
    assert f"{len(fallback.float_blocks)} block(s) back in float" in (tmp_path / "o" / "report.md").read_text()


def test_interrupted_optimize_leaves_nothing_behind(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(search, "_race", interrupt)
    with pytest.raises(KeyboardInterrupt):
        search.optimize("convmlp_s", input_size=64, targets=("ort",), precisions=("fp32",), out=tmp_path / "o")
    assert list(tmp_path.iterdir()) == []


def test_budget_options_are_checked():
    assert search.budget_tolerance(None, None) == {"cosine": (0.99, "min")}
    assert search.budget_tolerance(None, 0.5) == {"top1": (0.995, "min")}
    with pytest.raises(UserError, match="exclude each other"):
        search.budget_tolerance(0.99, 0.5)
    with pytest.raises(UserError, match="percentage"):
        search.budget_tolerance(None, 150)
    with pytest.raises(UserError, match="unknown calibration method 'magic'"):
        search.plan(["ort"], ["int8"], ["magic"])


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_gemm_microbenchmark_computes_the_product(tmp_path, precision):
    path = tmp_path / "gemm.onnx"
    onnx.save(roofline.gemm_graph(precision, size=64), str(path))
    run, _ = runtimes.load("ort", path, precision, threads=1)
    a = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    weights = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32) / 8
    y, expected = run(a).ravel(), (a @ weights).ravel()
    assert np.dot(y, expected) / np.linalg.norm(y) / np.linalg.norm(expected) > (0.999 if precision == "int8" else 0.9999999)


def test_roofline_is_measured_once_per_machine_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = roofline.roofline("ort", "fp32", threads=1)
    again = roofline.roofline("ort", "fp32", threads=1)
    assert first == again and first["gflops"] > 1 and roofline.machine_id() in first["key"]
    cached = json.loads((tmp_path / "uninext-deploy" / "roofline.json").read_text())
    assert list(cached) == [first["key"]] and f"ort {runtimes.installed_version('ort')}" in first["key"]


def test_top1_budget_without_bundle(tmp_path):
    out = tmp_path / "top1"
    result = run_cli("optimize", "-m", "convmlp_s", "--input-size", "64", "64", "--targets", "ort", "--precisions",
                     "fp32", "--max-top1-drop", "0", "--iters", "3", "--no-bundle", "--out", str(out))
    assert result.returncode == 0, result.stderr
    loaded = search.OptimizeResult.load(out / "results.json")
    assert loaded.budget == {"top1": [1.0, "min"]} and loaded.best.photos.top1 == 1.0 and loaded.bundle is None
    assert "within top-1 drop <= 0%" in (out / "report.md").read_text()
    assert not [p for p in out.iterdir() if p.is_dir()]
