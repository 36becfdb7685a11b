"""The CLI as a user runs it: every command on its embedded defaults, and one-line errors for bad input."""

import importlib.metadata
import json

import pytest

from conftest import run_cli


def test_console_script_is_declared():
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts["uninext-deploy"] == "uninext_deploy.cli:main"


def test_models_lists_every_variant_with_official_numbers():
    result = run_cli("models", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"uninext_t", "convmlp_s", "uninet_b1"} <= set(rows)
    assert all(abs(r["params_delta_pct"]) <= 0.5 and abs(r["gmacs_delta_pct"]) <= 3 for r in rows.values())


def test_doctor_reports_versions_and_hints():
    result = run_cli("doctor", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["packages"]["onnxruntime"]["version"]
    assert info["packages"]["tensorrt"]["version"] or "GPU" in info["packages"]["tensorrt"]["hint"]


def test_export_runs_on_its_defaults(tmp_path):
    result = run_cli("export", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    artifact = tmp_path / "artifacts" / "uninext_t-onnx-fp32-b1-224x224"
    assert (artifact / "model.onnx").stat().st_size > 50e6
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["model"]["name"] == "uninext_t" and manifest["input"]["shape"] == [1, 3, 224, 224]


def test_parity_runs_on_its_defaults():
    result = run_cli("parity")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "uninext_t -> ort fp32" in result.stdout and result.stdout.count("pass") == 4
    assert "photos" in result.stdout and "random" in result.stdout


def test_profile_runs_on_its_defaults():
    result = run_cli("profile", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"]["runs"] == 50 and report["eager"]["runs"] == 50
    assert report["backend"]["p50_ms"] <= report["backend"]["p99_ms"]
    assert report["speedup_vs_eager"] == pytest.approx(report["eager"]["p50_ms"] / report["backend"]["p50_ms"])


def test_profile_per_layer_names_real_nodes():
    result = run_cli("profile", "-m", "convmlp_s", "--iters", "3", "--warmup", "1", "--per-layer", "--no-eager",
                     "--json")
    assert result.returncode == 0, result.stderr
    layers = json.loads(result.stdout)["layers"]
    assert len(layers) > 20 and {"Conv", "LayerNormalization"} <= {layer["op"] for layer in layers}


@pytest.mark.parametrize("args, message", [
    (("export", "-m", "uninext_tt"), "unknown model 'uninext_tt'; did you mean uninext_t"),
    (("export", "-m", "convmlp_s", "--input-size", "16", "16"), "at least 32 pixels a side"),
    (("export", "-m", "convmlp_s", "--target", "tflite"), "unknown target 'tflite'; choose one of"),
    (("export", "-m", "convmlp_s", "--fp16", "--int8"), "--fp16 and --int8 exclude each other"),
    (("export", "-m", "convmlp_s", "--opset", "13"), "opset 13 is too old"),
    (("export", "-m", "convmlp_s", "--trt-version", "10.3", "--dla-core", "0"),
     "--trt-version, --dla-core cannot be used with --target onnx"),
    (("profile", "-m", "convmlp_s", "--iters", "3", "--seconds", "1"), "--iters and --seconds exclude each other"),
    (("parity", "-m", "convmlp_s", "--images", "/nonexistent/photos"), "image folder /nonexistent/photos does not exist"),
])
def test_bad_input_is_one_line_with_exit_2(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_output_path_that_is_a_file(tmp_path):
    (tmp_path / "taken").write_text("x")
    result = run_cli("export", "-m", "convmlp_s", "--out", str(tmp_path / "taken"))
    assert result.returncode == 2 and "is an existing file" in result.stderr
    assert (tmp_path / "taken").read_text() == "x"


def test_corrupt_weights_file(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"garbage")
    result = run_cli("export", "-m", "convmlp_s", "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "a"))
    assert result.returncode == 2 and "not a PyTorch state dict" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists() and [p.name for p in tmp_path.iterdir()] == ["w.pth"]
