"""An arm64 board over SSH: a real SSH server whose python3 is the emulated aarch64 CPU's (ssh_server.
emulated_aarch64) and whose pip has no index, so the board's runtime comes from aarch64 wheels this machine
downloads. An arm64 bundle is proven there by bundle --device and verified again, as on a board in the field."""

from __future__ import annotations

import pytest
from ssh_server import emulated_aarch64, start_board
from test_wheels import NO_INDEX

from uninext_deploy import api
from uninext_deploy.cache import cache_dir

pytestmark = pytest.mark.slow  # the board's venv and pip run emulated


@pytest.fixture
def arm_board(tmp_path, monkeypatch):
    board = start_board(tmp_path / "board", device_env={**NO_INDEX, **emulated_aarch64(tmp_path / "bin")})
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_dir().parent))  # this machine's ARM set-up, not a new one
    monkeypatch.setenv("HOME", str(board.client_home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    yield board
    board.server.stop()


def test_an_arm64_bundle_is_proven_and_verified_on_an_arm64_board_over_ssh(arm_board, tmp_path):
    facts = api.doctor(device="board")
    assert facts["machine"] == "aarch64" and facts["home"] == str(arm_board.device_home)
    made = api.bundle("test_convmlp", "ort", platform=api.PlatformOptions("linux/arm64"), out=tmp_path / "b",
                      device="board")
    proof = made.manifest["bundle"]["verified"]["linux/arm64 on board"]
    assert proof["passed"], proof
    again = api.verify(made.path, device="board")
    assert again.passed and again.platform == "linux/arm64" and again.runner.endswith(" on board")
    # the written bundle holds its proof (another manifest): put there again, its runtime the proof's
    assert again.device["uploaded"] and not again.device["runtime_created"]
    assert proof["device"]["machine"] == "aarch64" and proof["device"]["python"] == facts["python"], proof
