"""Artifacts are written atomically and bad output paths are refused up front; replacing one says so, two
writers at once leave one complete artifact, and a full disk is one line with nothing left behind."""

import resource
import signal
import subprocess
import sys

import pytest

from uninext_deploy import api
from uninext_deploy.artifact import Artifact, Replaced, atomic_folder, sha256
from uninext_deploy.errors import UserError


def test_failure_inside_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as staging:
            (staging / "model.onnx").write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_success_replaces_an_existing_artifact_in_one_step(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as staging:
        (staging / "manifest.json").write_text("{}")
        (staging / "model.onnx").write_bytes(b"first")
    with pytest.warns(Replaced, match=f"replaced the earlier {target} \\(in one step\\)"):
        with atomic_folder(target) as staging:
            (staging / "manifest.json").write_text("{}")
            (staging / "model.onnx").write_bytes(b"second")
    assert (target / "model.onnx").read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_existing_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is an existing file"):
        api.export("test_convmlp", out=tmp_path / "f")


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(UserError, match="exists and was not written by uninext-deploy"):
        api.export("test_convmlp", out=tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").exists()


def test_location_under_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="not a writable folder"):
        api.export("test_convmlp", out=tmp_path / "notes.txt" / "artifact")


def test_manifest_checksums_match_the_files(convmlp_s_artifact):
    artifact = Artifact.open(convmlp_s_artifact.path)
    for name, entry in artifact.manifest["files"].items():
        assert sha256(artifact.path / name) == entry["sha256"]
        assert (artifact.path / name).stat().st_size == entry["bytes"]
    assert artifact.manifest["backend"] == "ort" and artifact.manifest["schema"] == 3


def test_opening_a_non_artifact_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="is not an artifact folder"):
        Artifact.open(tmp_path)


def test_two_exports_to_one_out_at_once_leave_one_complete_artifact(tmp_path):
    out = tmp_path / "out"
    runs = [subprocess.Popen([sys.executable, "-m", "uninext_deploy", "export", "-m", "test_convmlp", "--seed", str(seed),
                              "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for seed in (1, 2, 3)]
    results = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    for code, stderr in results:  # each completes (the later ones replace the earlier) or says why in one line
        assert code == 0 or (code == 2 and len([x for x in stderr.splitlines() if x.startswith("error")]) == 1), stderr
    assert any(code == 0 for code, _ in results)
    artifact = Artifact.open(out)
    artifact.check()  # every file of one export, none of another's
    assert artifact.manifest["model"]["seed"] in (1, 2, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def _file_size_limit(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("command", ["export", "bundle", "optimize"])
def test_a_full_disk_is_one_line_and_leaves_nothing(command, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "uninext_deploy", command, "-m", "test_convmlp",
                             "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                            preexec_fn=_file_size_limit(1 << 16))  # 64 kB; test_convmlp's ONNX graph is ~600 kB
    errors = [line for line in result.stderr.splitlines() if not line.startswith("[")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr
    assert errors[0].startswith("error: cannot write ") and "a file exceeds the file-size limit; nothing was written" \
        in errors[0] and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []
