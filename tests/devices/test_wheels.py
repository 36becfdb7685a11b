"""A device without the package index gets its runtime from wheels this machine downloads for it (wheels.py),
through a real SSH server whose device pip has no index at all."""

from __future__ import annotations

import os
import subprocess

import pytest
from ssh_server import start_board

from uninext_deploy import api
from uninext_deploy.devices.wheels import platform_tags
from uninext_deploy.errors import UserError

# pip on the device with no configuration (this machine's points at local wheel folders) and no index
NO_INDEX = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": None, "PIP_CONSTRAINT": None}


def test_platform_tags_run_from_manylinux2014_to_the_devices_glibc():
    assert platform_tags("aarch64", "glibc 2.19") == ["manylinux2014_aarch64", "manylinux_2_17_aarch64",
                                                      "manylinux_2_18_aarch64", "manylinux_2_19_aarch64"]
    assert platform_tags("x86_64", "glibc 2.36")[-1] == "manylinux_2_36_x86_64"
    with pytest.raises(UserError, match="not glibc: the runtimes publish wheels for glibc only"):
        platform_tags("aarch64", None)


@pytest.fixture
def offline_board(tmp_path, monkeypatch):
    board = start_board(tmp_path / "board", device_env=NO_INDEX)
    monkeypatch.setenv("HOME", str(board.client_home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    yield board
    board.server.stop()


def test_a_device_without_the_index_installs_the_hosts_wheels_and_verifies(offline_board, tmp_path):
    env = {**os.environ, **{k: v for k, v in NO_INDEX.items() if v}}
    for key in (k for k, v in NO_INDEX.items() if v is None):
        env.pop(key, None)
    offline = subprocess.run(["python3", "-m", "pip", "download", "-q", "--no-deps", "-d", str(tmp_path / "w"),
                              "numpy"], capture_output=True, text=True, env=env)
    assert offline.returncode != 0  # the device's pip really has no index
    bundle = api.bundle("test_convmlp", "ort", out=tmp_path / "bundle")
    first = api.verify(bundle.path, device="board")
    assert first.passed and first.device["runtime_created"] and first.device["wheels"] == "wheels from this machine"
    venv = first.device["python"].removesuffix("/bin/python")
    site = subprocess.run([first.device["python"], "-c", "import onnxruntime, numpy; print(onnxruntime.__version__)"],
                          capture_output=True, text=True, env=env)
    assert site.returncode == 0 and site.stdout.strip(), site.stderr
    assert os.path.realpath(venv).startswith(str(offline_board.device_home))
    again = api.verify(bundle.path, device="board")
    assert again.passed and not again.device["runtime_created"] and again.device["wheels"] is None


def test_requirements_neither_the_device_nor_this_machine_can_install_are_one_line(offline_board, tmp_path):
    from uninext_deploy.devices.base import parse_destination
    from uninext_deploy.devices.ssh import SshDevice

    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "requirements.txt").write_text("no-such-package-uninext==1.0\n")
    with SshDevice(parse_destination("board"), timeout=120) as device:
        with pytest.raises(UserError) as refused:
            device.prepare(device.put(folder))
    message = str(refused.value)
    assert message.startswith("pip on board could not install requirements.txt (") and "\n" not in message
    assert "this machine could not download the device's wheels either (Python 3." in message
    assert "no-such-package-uninext" in message and message.endswith("publish wheels for")
    venvs = offline_board.device_home / ".cache" / "uninext-deploy" / "device" / "venvs"
    assert not venvs.exists() or list(venvs.iterdir()) == []  # nothing half-made left there
