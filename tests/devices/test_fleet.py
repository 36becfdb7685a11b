"""A fleet through real SSH servers on 127.0.0.1 (ssh_server.py): verify on every device of an inventory at once,
each ending with its result or its one line, and the exit code saying how the fleet did (devices/fleet.py)."""

from __future__ import annotations

import json
import socket

import pytest
from conftest import invoke
from ssh_server import start_board

from uninext_deploy import api


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Two boards whose keys and host keys the first one's client home holds: 'good', and 'full', whose disk
    takes no bundle (a file-size limit of 64 kB); and 'gone', a port nothing listens on."""
    root = tmp_path_factory.mktemp("fleet")
    good, full = start_board(root / "good"), start_board(root / "full")
    full.server.file_limit_kb = 64
    home = good.client_home
    full_key = full.client_home / ".ssh" / "id_ed25519"
    with open(good.known_hosts, "a") as known:
        known.write(full.known_hosts.read_text())
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        gone = closed.getsockname()[1]
    inventory = root / "fleet.yml"
    inventory.write_text(f"""all:
  vars:
    ansible_host: 127.0.0.1
    ansible_user: tester
  children:
    shelf:
      hosts:
        good: {{ansible_port: {good.port}}}
        full: {{ansible_port: {full.port}, ansible_ssh_private_key_file: {full_key}}}
    field:
      hosts:
        gone: {{ansible_port: {gone}}}
""")
    yield home, inventory
    good.server.stop()
    full.server.stop()


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory):
    return api.bundle("test_convmlp", "ort", out=tmp_path_factory.mktemp("fleet-bundle") / "test_convmlp")


@pytest.fixture(autouse=True)
def client_home(fleet, monkeypatch):
    monkeypatch.setenv("HOME", str(fleet[0]))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


def test_verify_on_an_inventory_gives_every_device_its_end(fleet, small_bundle):
    _, inventory = fleet
    report = api.verify(small_bundle.path, devices=str(inventory))
    ends = {o.device: o for o in report.outcomes}
    assert list(ends) == ["good", "full", "gone"]
    assert ends["good"].result.passed and ends["good"].result.runner.endswith(" on good")
    assert ends["full"].reached and ends["full"].result is None and "its disk is full" in ends["full"].error
    assert not ends["gone"].reached and "connection refused" in ends["gone"].error
    assert report.exit_code == 1

    result = invoke("verify", str(small_bundle.path), "--devices", f"{inventory}:shelf", "--json")
    assert result.returncode == 1, result.stderr
    devices = json.loads(result.stdout)["devices"]
    assert [(d["device"], d["verify"] and d["verify"]["passed"]) for d in devices] == [("good", True), ("full", None)]
    shown = invoke("verify", str(small_bundle.path), "--devices", f"{inventory}:shelf")
    assert "1 of 2 devices passed" in shown.stdout and "PASS" in shown.stdout, shown.stdout


def test_a_fleet_none_of_which_answers_exits_2_and_one_that_passes_0(fleet, small_bundle):
    _, inventory = fleet
    gone = invoke("verify", str(small_bundle.path), "--devices", f"{inventory}:field")
    assert gone.returncode == 2 and "unreachable" in gone.stdout and "0 of 1 devices passed" in gone.stdout
    good = [line for line in inventory.read_text().splitlines() if line.strip().startswith("good:")][0]
    port = good.split("ansible_port: ")[1].rstrip("}")
    passed = invoke("verify", str(small_bundle.path), "--devices", f"tester@127.0.0.1:{port}")
    assert passed.returncode == 0 and "1 of 1 devices passed" in passed.stdout, passed.stdout + passed.stderr
