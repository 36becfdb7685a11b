"""The CLI as a user runs it: the embedded defaults, existing artifacts, start-up without torch, progress in
logs, and one-line errors for bad input (renamed flags included)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import invoke, run_cli
from uninext_deploy.backends import backend_class


@pytest.fixture(scope="module")
def models_cache(tmp_path_factory):
    """A cache folder whose models table the first `models` run fills (the tests below share it)."""
    return {**os.environ, "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}


def test_models_lists_a_family_with_official_numbers(models_cache):
    """(Every variant's counts against the official ones: tests/models.)"""
    result = subprocess.run([sys.executable, "-m", "uninext_deploy", "models", "--family", "convmlp", "--json"],
                            env=models_cache, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"convmlp_s", "convmlp_m", "convmlp_l", "test_convmlp"}
    assert rows["test_convmlp"]["official_params_m"] is None and rows["test_convmlp"]["input_size"] == 64
    assert all(abs(r["params_delta_pct"]) <= 0.5 and abs(r["gmacs_delta_pct"]) <= 3 for n, r in rows.items()
               if n != "test_convmlp")


def test_the_table_knows_the_registered_families():
    from uninext_deploy import model_table
    from uninext_deploy.models._registry import FAMILIES

    assert model_table.FAMILIES == FAMILIES


def test_doctor_shows_each_runtime_as_its_declaration_says():
    result = run_cli("doctor", "--json")
    assert result.returncode == 0, result.stderr
    packages = json.loads(result.stdout)["packages"]
    assert packages["onnxruntime"]["version"] and packages["openvino"]["version"]
    for name in ("ort", "openvino", "trt"):
        backend = backend_class(name)()
        for package in (backend.runtime.package, *backend.host_packages):
            entry = packages[package]
            assert entry["hint"] == (None if entry["version"] else backend.install_hint())
    assert backend_class("openvino")().install_hint() == "pip install -c constraints.txt openvino nncf"


@pytest.mark.parametrize("command", [["--help"], ["export", "--help"], ["doctor", "--json"],
                                     ["models", "--family", "convmlp", "--json"]])
def test_help_doctor_and_models_start_without_importing_torch(command, models_cache):
    """What makes --help take seconds is importing torch and the runtimes; these commands import neither
    (models reads its cached table, filled by its first run), but doctor asks the runtimes how they run INT8
    and FP16 on this CPU, so it imports them, never torch."""
    env = models_cache
    if command[0] == "models":
        assert subprocess.run([sys.executable, "-m", "uninext_deploy", *command], env=env,
                              capture_output=True).returncode == 0
    heavy = ("torch",) if command[0] == "doctor" else ("torch", "onnxruntime", "openvino", "onnx")
    code = ("import sys\nfrom uninext_deploy import cli\ntry:\n    cli.app(args=sys.argv[1:], prog_name='u')\n"
            "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
            f"heavy = [m for m in {heavy!r} if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    result = subprocess.run([sys.executable, "-c", code, *command], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_version():
    from uninext_deploy import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"uninext-deploy {__version__}"


@pytest.fixture(scope="module")
def default_artifact(tmp_path_factory):
    """`export` on its embedded defaults (UniNeXt-T, ONNX Runtime, FP32, 224), as a user in a fresh folder."""
    cwd = tmp_path_factory.mktemp("user")
    result = run_cli("export", "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "artifacts" / "uninext_t-ort-fp32-b1-224x224", result


def test_export_runs_on_its_defaults_and_logs_its_steps(default_artifact):
    artifact, result = default_artifact
    assert (artifact / "model.onnx").stat().st_size > 50e6
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["model"]["name"] == "uninext_t" and manifest["input"]["shape"] == [1, 3, 224, 224]
    lines = result.stderr.strip().splitlines()  # not a terminal: one line per step with the elapsed time
    assert lines[0].endswith("exporting uninext_t to ort") and lines[0].startswith("[")
    assert lines[-1].endswith("] done") and " s] " in lines[-1]


def test_parity_and_profile_take_the_existing_artifact(default_artifact):
    artifact, _ = default_artifact
    result = run_cli("parity", "--artifact", str(artifact), "--random-inputs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "uninext_t -> ort fp32" in result.stdout and result.stdout.count("pass") == 2
    assert "exporting" not in result.stderr and "not held to the tolerance" not in result.stdout  # every row gated
    result = run_cli("profile", "--artifact", str(artifact), "--iters", "5", "--warmup", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["backend"]["runs"] == 5 and report["eager"]["runs"] == 5
    assert report["speedup_vs_eager"] == pytest.approx(report["eager"]["p50_ms"] / report["backend"]["p50_ms"])


def test_profile_per_layer_names_real_nodes():
    result = invoke("profile", "-m", "test_convmlp", "--iters", "3", "--warmup", "1", "--per-layer", "--no-eager",
                     "--json")
    assert result.returncode == 0, result.stderr
    layers = json.loads(result.stdout)["layers"]
    assert len(layers) > 20 and {"Conv", "LayerNormalization"} <= {layer["op"] for layer in layers}


@pytest.mark.parametrize("size, shape", [("48", [1, 3, 48, 48]), ("64x32", [1, 3, 64, 32]), ("64 32", [1, 3, 64, 32])])
def test_input_size_is_a_side_or_height_and_width(tmp_path, size, shape):
    command = ["export", "-m", "test_convmlp", "--input-size", *size.split(), "--out", str(tmp_path / "a"), "--json"]
    # the two-number form is joined by the console script's entry point, so it runs as a user runs it
    result = run_cli(*command) if " " in size else invoke(*command)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["manifest"]["input"]["shape"] == shape


@pytest.mark.parametrize("args, message", [
    (("export", "-m", "uninext_tt"), "unknown model 'uninext_tt'; did you mean uninext_t"),
    (("export", "-m", "convmlp_s", "--input-size", "16"), "at least 32 pixels a side"),
    (("export", "-m", "convmlp_s", "--input-size", "big"), "--input-size 'big': give a side"),
    (("export", "-m", "convmlp_s", "--target", "tflite"), "unknown target 'tflite'; choose one of"),
    (("export", "-m", "convmlp_s", "--fp16", "--int8"), "--fp16 and --int8 exclude each other"),
    (("export", "-m", "convmlp_s", "--opset", "13"), "opset 13 is too old"),
    (("export", "-m", "convmlp_s", "--batch", "0"), "--batch must be from 1 to 256, got 0"),
    (("export", "-m", "convmlp_s", "--seed", "-1"), "--seed must be from 0 to 4294967295, got -1"),
    (("export", "-m", "convmlp_s", "--trt-version", "10.3", "--dla-core", "0"),
     "--trt-version, --dla-core cannot be used with --target ort"),
    (("export", "--min-cosine", "0.99"), "--min-cosine is gone: the INT8 fallback target (cosine to the float graph) "
                                         "is --int8-min-cosine"),
    (("export", "--int8-min-cosine", "2"), "--int8-min-cosine must be above 0 and at most 1, got 2.0"),
    (("export", "--calib-size", "0"), "--calib-size must be from 1 to 10000, got 0"),
    (("profile", "-m", "convmlp_s", "--iters", "3", "--seconds", "1"), "--iters and --seconds exclude each other"),
    (("profile", "--iters", "0"), "--iters must be from 1 to 1000000, got 0"),
    (("profile", "--threads", "0"), "--threads must be from 1 to 1024, got 0"),
    (("profile", "--warmup", "-1"), "--warmup must be from 0 to 100000, got -1"),
    (("profile", "--seconds", "0"), "--seconds must be above 0 and at most 86400, got 0.0"),
    (("parity", "-m", "convmlp_s", "--images", "/nonexistent/photos"), "image folder /nonexistent/photos does not exist"),
    (("parity", "--random", "4"), "--random is gone: use --random-inputs N"),
    (("parity", "--batch", "2"), "--batch is gone: parity checks a list of batch sizes: --batches 1,2"),
    (("parity", "--batches", "1,x"), "--batches takes whole numbers, got 'x'"),
    (("parity", "--batches", "0"), "--batches must be from 1 to 256, got 0"),
    (("parity", "--random-inputs", "-1"), "--random-inputs must be from 1 to 10000"),
    (("parity", "--platform", "linux/arm64", "--cpu", "cortex-a99"), "unknown --cpu 'cortex-a99'"),
    (("models", "--family", "xyz"), "unknown family 'xyz'; choose one of uninext, convmlp, uninet"),
    (("export", "-t", "trt", "--trt-version", "99"), "--trt-version 99: the parser checks know TensorRT 8.0 to 11.x"),
    (("export", "-t", "trt", "--trt-version", "ten"), "cannot read TensorRT version 'ten'"),
    (("export", "--calib-method", "median"), "unknown calibration method 'median'; choose one of"),
    (("optimize", "--precisions", "int4"), "unknown precision 'int4'; choose one of fp32, fp16, int8"),
    (("bundle", "--platform", "windows"), "unknown --platform 'windows'"),
    (("export", "--features", "stage9"), "--features: no stage 'stage9'"),
    (("optimize", "--seconds", "1"), "No such option: --seconds"),
])
def test_bad_input_is_one_line_with_exit_2(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    errors = [line for line in result.stderr.strip().splitlines() if not line.startswith("[")]  # progress lines
    assert len(errors) == 1 or "No such option" in message, result.stderr
    assert "Traceback" not in result.stderr and not list(tmp_path.iterdir())


@pytest.mark.parametrize("args, message", [
    (("profile", "-t", "tflite"), "unknown target 'tflite'"),
    (("optimize", "--targets", "ort,tflite"), "unknown target 'tflite'"),
    (("bundle", "-t", "tflite"), "unknown target 'tflite'"),
    (("export", "--int8", "--calib", "/nonexistent/photos"), "--calib folder /nonexistent/photos does not exist"),
    (("optimize", "--calib", "/nonexistent/photos"), "--calib folder /nonexistent/photos does not exist"),
    (("export", "-m", "resnet50"), "unknown model 'resnet50'; this tool builds the uninext, convmlp, uninet families"),
])
def test_mistakes_are_refused_before_the_first_step_starts(args, message, tmp_path, monkeypatch):
    """No progress line ("[  0.0 s] exporting ...") before the error: nothing started; and no test model is
    offered for a model of another family."""
    monkeypatch.chdir(tmp_path)
    result = invoke(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line, no step before it
    assert "test_" not in result.stderr and not list(tmp_path.iterdir())


def test_precision_as_an_option_is_answered_with_the_flags():
    result = run_cli("export", "--precision", "int8")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: no such option --precision: precision is a flag, --fp16 or --int8 (FP32 "
                                     "without either); see uninext-deploy export --help")


def test_help_labels_no_flag_as_bool():
    for command in ([], ["export"], ["parity"], ["profile"], ["bundle"], ["verify"], ["optimize"], ["report"],
                    ["keygen"], ["doctor"], ["models"]):
        result = invoke(*command, "--help")
        assert result.returncode == 0 and "--help" in result.stdout and "<bool>" not in result.stdout, command


def test_output_path_that_is_a_file(tmp_path):
    (tmp_path / "taken").write_text("x")
    result = invoke("export", "-m", "test_convmlp", "--out", str(tmp_path / "taken"))
    assert result.returncode == 2 and "is an existing file" in result.stderr
    assert (tmp_path / "taken").read_text() == "x"


def test_corrupt_weights_file(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"garbage")
    result = invoke("export", "-m", "convmlp_s", "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "a"))
    assert result.returncode == 2 and "not a PyTorch state dict" in result.stderr
    assert len([line for line in result.stderr.strip().splitlines() if line.startswith("error")]) == 1
    assert not (tmp_path / "a").exists() and [p.name for p in tmp_path.iterdir()] == ["w.pth"]


def test_weights_holding_nan_are_refused_naming_the_tensor(tmp_path):
    import torch

    from uninext_deploy.models import create_model

    state = create_model("convmlp_s", input_size=64).state_dict()
    name = [k for k in state if k.endswith("weight") and state[k].dim() > 1][3]
    state[name][0, 0] = float("nan")
    torch.save({"model": state}, tmp_path / "broken.pth")
    result = invoke("export", "-m", "convmlp_s", "--input-size", "64", "--weights", str(tmp_path / "broken.pth"),
                    "--out", str(tmp_path / "a"))
    errors = [line for line in result.stderr.strip().splitlines() if line.startswith("error")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {name} holds NaN/Inf (1 of ") and "nothing was exported" in errors[0]
    assert not (tmp_path / "a").exists() and [p.name for p in tmp_path.iterdir()] == ["broken.pth"]


def _options(kinds) -> list[tuple[str, str]]:
    """(command, flag) of every option of every command whose value is one of ``kinds`` (by its annotation)."""
    import typer

    from uninext_deploy.cli import app

    found = []
    for name, command in typer.main.get_command(app).commands.items():
        for param in command.params:
            if param.opts and not getattr(param, "is_flag", False) and (
                    param.bare_type() in kinds or param.opts[0] in ("--batches", "--input-size")):
                found.append((name, param.opts[0]))
    return found


NUMERIC = [(c, f) for c, f in _options(("int", "float")) if f not in ("--min-cosine",) or c == "optimize"] + [
    ("parity", "--batches"), ("profile", "--input-size")]


def _bad_values(flag: str) -> list:
    from uninext_deploy.limits import LIMITS

    low, high, closed = LIMITS[flag]
    values = [-1, low - 1 if closed else low, 10**12, high * 10 + 1]
    return sorted({int(v) if float(v).is_integer() else v for v in values})


def test_every_numeric_option_has_a_declared_range():
    from uninext_deploy.limits import LIMITS

    assert len(NUMERIC) > 40 and {flag for _, flag in NUMERIC} <= set(LIMITS)


@pytest.mark.parametrize("command, flag", NUMERIC)
def test_every_count_size_and_budget_is_refused_outside_its_range(command, flag, tmp_path, monkeypatch):
    """0, a negative and an absurd value for every numeric option of every command: exit 2, one line naming the
    allowed range, no traceback, nothing written."""
    from uninext_deploy.limits import allowed

    monkeypatch.chdir(tmp_path)
    for value in _bad_values(flag):
        result = invoke(command, flag, str(value))
        errors = [line for line in result.stderr.strip().splitlines() if not line.startswith("[")]
        assert result.returncode == 2 and len(errors) == 1, (value, result.stderr)
        assert flag in errors[0] and allowed(flag) in errors[0], (value, errors[0])
        assert "Traceback" not in result.stderr and not list(tmp_path.iterdir()), value


@pytest.mark.parametrize("args, message", [
    (("profile", "--iters", "abc"), "error: Invalid value for '--iters': "),
    (("export", "--bogus", "1"), "error: No such option: --bogus"),
])
def test_parser_errors_are_one_line_too(args, message, tmp_path):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and f"see uninext-deploy {args[0]} --help" in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_reported_row_is_explained_under_the_table(tmp_path):
    """INT8's random-input rows are reported, not gated: the table says what "report" means."""
    result = invoke("parity", "-m", "test_convmlp", "--int8", "--calib-size", "4", "--batches", "1", "--random-inputs",
                    "2", "--out", str(tmp_path / "a"))
    rows = [line for line in result.stdout.splitlines() if line.strip().startswith("1  random")]
    assert rows and all(row.rstrip().endswith("report") for row in rows), result.stdout
    assert ("report: shown, not held to the tolerance: int8 is judged on the photos, since its error on seeded "
            "noise says little about real inputs") in result.stdout
