"""Artifacts are written atomically and bad output paths are refused up front."""

import pytest

from uninext_deploy import api
from uninext_deploy.artifact import Artifact, atomic_folder, sha256
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
    for content in (b"first", b"second"):
        with atomic_folder(target) as staging:
            (staging / "manifest.json").write_text("{}")
            (staging / "model.onnx").write_bytes(content)
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
