"""optimize: a small real search on ConvMLP-S, its choice and its bundle; budgets, float fallback, refusals."""

import json

import pytest

from conftest import run_cli
from uninext_deploy import api
from uninext_deploy.backends import get_backend
from uninext_deploy.errors import UserError
from uninext_deploy.optimize import plan
from uninext_deploy.results import OptimizeResult, budget_tolerance


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
    assert manifest["backend"] == get_backend(result.best.target).name
    assert manifest["precision"] == result.best.precision
    assert manifest["bundle"]["tolerance"] == {"cosine": [0.99, "min"]}  # the budget is what the device checks
    assert api.verify(folder).passed


def test_no_candidate_within_the_budget_is_a_failure_with_a_report(tmp_path):
    out = tmp_path / "none"
    result = run_cli("optimize", "-m", "test_convmlp", "--targets", "ort", "--precisions", "fp16", "--min-cosine",
                     "1.0", "--iters", "3", "--out", str(out))
    assert result.returncode == 1 and "no candidate met the budget" in result.stderr
    assert "**No winner**" in (out / "report.md").read_text()
    assert not list(out.glob("*.tar.gz"))


def test_int8_missing_the_budget_is_retried_with_float_fallback(tmp_path):
    result, _ = api.optimize("test_convmlp", targets=("ort",), precisions=("int8",),
                             calib_methods=("percentile",), min_cosine=0.998,
                             timing=api.TimingOptions(iters=3, warmup=1), out=tmp_path / "o", make_bundle=False)
    plain, fallback = result.candidates
    assert plain.failed and not plain.fallback and fallback.fallback
    assert fallback.float_blocks and not plain.float_blocks
    assert fallback.photos.cosine > plain.photos.cosine and fallback.passed
    assert f"{len(fallback.float_blocks)} block(s) back in float" in (tmp_path / "o" / "report.md").read_text()


def test_interrupted_optimize_leaves_no_output_only_its_finished_builds_for_resume(tmp_path, monkeypatch):
    """Ctrl-C after the builds: no output folder, only the journal of whole builds beside it (o.partial), which
    --resume takes up (nothing built again) and which goes once the output is written."""
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr("uninext_deploy.optimize._race", interrupt)
        with pytest.raises(KeyboardInterrupt):
            api.optimize("test_convmlp", targets=("ort",), precisions=("fp32",), out=tmp_path / "o")
    assert [p.name for p in tmp_path.iterdir()] == ["o.partial"]
    assert len(list((tmp_path / "o.partial").glob("*/built.pickle"))) == 1
    result, _ = api.optimize("test_convmlp", targets=("ort",), precisions=("fp32",), out=tmp_path / "o",
                             build=api.BuildOptions(resume=True), timing=api.TimingOptions(iters=3))
    assert result.best is not None and [p.name for p in tmp_path.iterdir()] == ["o"]


def test_tensorrt_options_reach_only_the_backend_that_takes_them(tmp_path):
    result, _ = api.optimize("test_convmlp", targets=("ort",), precisions=("fp32",), trt=api.TrtOptions(force=True),
                             timing=api.TimingOptions(iters=2, warmup=0), out=tmp_path / "o", make_bundle=False)
    assert result.best is not None and result.best.target == "ort"


def test_budget_options_are_checked():
    assert budget_tolerance(None, None) == {"cosine": (0.99, "min")}
    assert budget_tolerance(None, 0.5) == {"top1": (0.995, "min")}
    with pytest.raises(UserError, match="exclude each other"):
        budget_tolerance(0.99, 0.5)
    with pytest.raises(UserError, match="--max-top1-drop must be from 0 to 100"):
        budget_tolerance(None, 150)
    with pytest.raises(UserError, match="unknown calibration method 'magic'"):
        plan(["ort"], ["int8"], ["magic"])


def test_top1_budget_without_bundle(tmp_path):
    out = tmp_path / "top1"
    result = run_cli("optimize", "-m", "test_convmlp", "--targets", "ort", "--precisions", "fp32",
                     "--max-top1-drop", "0", "--iters", "3", "--no-bundle", "--out", str(out))
    assert result.returncode == 0, result.stderr
    loaded = OptimizeResult.load(out / "results.json")
    assert loaded.budget == {"top1": [1.0, "min"]} and loaded.best.photos.top1 == 1.0 and loaded.bundle is None
    assert "within top-1 drop <= 0%" in (out / "report.md").read_text()
    assert not [p for p in out.iterdir() if p.is_dir()]


def test_candidates_that_cannot_win_on_this_cpu_are_listed_as_skipped_unless_asked_for(monkeypatch):
    import uninext_deploy.backends.ort as ort_backend

    monkeypatch.setattr(ort_backend, "fp16_runs_through_casts", lambda: True)
    by_name = {c.name: c for c in plan(["ort", "openvino"], None, ["percentile"])}
    assert "no FP16 Conv or MatMul kernel on this CPU" in by_name["ort fp16"].skipped
    assert by_name["openvino fp16"].skipped is None and by_name["ort int8 (percentile)"].skipped is None
    assert plan(["ort"], ["fp16"], ["percentile"])[0].skipped is None  # named: tried anyway
    monkeypatch.setattr(ort_backend, "fp16_runs_through_casts", lambda: False)
    assert {c.name: c for c in plan(["ort"], None, ["percentile"])}["ort fp16"].skipped is None
