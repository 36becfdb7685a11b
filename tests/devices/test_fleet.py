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
    report = api.verify(small_bundle.path, device=api.DeviceOptions(devices=str(inventory)))
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


def test_profile_on_the_fleet_times_every_device_it_reaches_and_keeps_the_timings(fleet, small_bundle):
    """Each reached device's timing by its own run.py --bench, kept in the results store: a second run is the
    stored one (same runs, `cached` saying when), --fresh times again; `results` lists what is kept."""
    from uninext_deploy.results import store

    _, inventory = fleet
    timing = api.TimingOptions(iters=5, warmup=1)
    first = api.profile(artifact=small_bundle.path, device=api.DeviceOptions(devices=str(inventory)), timing=timing)
    ends = {o.device: o for o in first.outcomes}
    assert list(ends) == ["good", "full", "gone"] and first.exit_code == 1
    timed = ends["good"].result
    assert timed.cached is None and len(timed.times_ms) == 5 and timed.latency.p50_ms > 0
    assert timed.runner["runtime"] == "onnxruntime" and timed.device == "good"
    assert "its disk is full" in ends["full"].error and not ends["gone"].reached
    kept = store.query(device="good")
    assert [(row["model"], row["p50_ms"]) for row in kept] == [("test_convmlp", timed.latency.p50_ms)]

    again = api.profile(artifact=small_bundle.path, device=api.DeviceOptions(devices=f"{inventory}:shelf"),
                        timing=timing).outcomes[0].result
    assert again.cached == kept[0]["measured_at"] and again.times_ms == timed.times_ms
    other_way = api.profile(artifact=small_bundle.path, device=api.DeviceOptions(devices=f"{inventory}:shelf"),
                            timing=api.TimingOptions(iters=6, warmup=1)).outcomes[0].result
    assert other_way.cached is None and len(other_way.times_ms) == 6  # timed another way: another row
    fresh = api.profile(artifact=small_bundle.path, device=api.DeviceOptions(devices=f"{inventory}:shelf"),
                        timing=api.TimingOptions(iters=5, warmup=1, fresh=True)).outcomes[0].result
    assert fresh.cached is None and fresh.times_ms != timed.times_ms
    assert len(store.query(device="good")) == 2  # the fresh timing replaced the first of its key

    listed = invoke("results", "--model", "test_convmlp", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["timings"]
    assert {(r["device"], r["precision"], r["target"]) for r in rows} == {("good", "fp32", "ort")}
    assert json.loads(invoke("results", "--precision", "int8", "--json").stdout)["timings"] == []
    refused = invoke("results", "--precision", "int4")
    assert refused.returncode == 2 and "--precision 'int4' is none of fp32, fp16, int8" in refused.stderr


def test_device_given_twice_is_a_fleet_and_a_one_device_command_says_so(fleet, small_bundle):
    _, inventory = fleet
    ports = {line.split(":")[0].strip(): line.split("ansible_port: ")[1].split(",")[0].rstrip("}")
             for line in inventory.read_text().splitlines() if "ansible_port" in line}
    shown = invoke("profile", "--artifact", str(small_bundle.path), "--device", f"tester@127.0.0.1:{ports['good']}",
                   "--device", f"tester@127.0.0.1:{ports['gone']}", "--iters", "3", "--warmup", "1")
    assert shown.returncode == 1, shown.stderr
    assert "1 of 2 devices passed" in shown.stdout and "p50 ms" in shown.stdout and "unreachable" in shown.stdout
    refused = invoke("bundle", "-m", "test_convmlp", "--devices", str(inventory))
    assert refused.returncode == 2 and "bundle runs on one device at a time; give --device once" in refused.stderr
    both = invoke("verify", str(small_bundle.path), "--device", "a@b", "--devices", str(inventory))
    assert both.returncode == 2 and "give the devices once" in both.stderr


def test_optimize_over_the_fleet_times_every_candidate_on_each_device_and_bundles_each_winner(fleet, tmp_path):
    """Candidates built once here, then timed on every device at once (each in turns); the device that takes no
    bundle and the one that is gone end in their one line; the reached one's winner is bundled for it."""
    _, inventory = fleet
    result, out = api.optimize("test_convmlp", targets=["ort"], precisions=["fp32", "int8"],
                               calib_methods=("percentile",), timing=api.TimingOptions(iters=5, warmup=1),
                               out=tmp_path / "o", device=api.DeviceOptions(devices=str(inventory)),
                               build=api.BuildOptions(workers=0))
    ends = {d["name"]: d for d in result.fleet}
    assert list(ends) == ["good", "full", "gone"]
    assert ends["good"]["platform"] == "linux/x86_64" and ends["good"]["winner"] is not None
    assert "its disk is full" in ends["full"]["error"] and not ends["gone"]["reached"]
    timed = [c for c in result.candidates if c.latency is not None]
    assert timed and all(set(c.fleet_latency) == {"good"} and c.fleet_latency["good"].runs == 5 for c in timed)
    assert all(c.device_latency == c.fleet_latency["good"] for c in timed)  # the only timed device is the slowest
    winner = result.candidates[ends["good"]["winner"]]
    assert winner.passed and all(winner.fleet_latency["good"].p50_ms <= c.fleet_latency["good"].p50_ms
                                 for c in timed if c.passed)
    assert api.verify(out / ends["good"]["bundle"]).passed
    report = (out / "report.md").read_text()
    assert "## On each device" in report and "good p50 ms" in report and (out / "latency_vs_cosine_good.svg").is_file()
    refused = invoke("optimize", "-m", "test_convmlp", "--devices", str(inventory), "--pick", "fastest")
    assert refused.returncode == 2 and "--pick 'fastest' is none of each-device, slowest-device" in refused.stderr
