"""Devices over SSH, end to end through a real asyncssh server on 127.0.0.1 (ssh_server.py): the bundle and
its venv are put on the device once and reused; every fault is one line."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest
from conftest import edited, invoke
from ssh_server import start_board

from uninext_deploy import api, cpp_runner
from uninext_deploy.devices import LocalDevice
from uninext_deploy.devices.base import parse_destination, tree_digest
from uninext_deploy.devices.ssh import SshDevice
from uninext_deploy.errors import UserError


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """One server for the module: its device home (and so its venv) is shared by every test, as on a device."""
    started = start_board(tmp_path_factory.mktemp("board"))
    yield started
    started.server.stop()


@pytest.fixture(autouse=True)
def client_home(board, monkeypatch):
    """The client side of every test: HOME with the key, config and known_hosts, and no agent."""
    monkeypatch.setenv("HOME", str(board.client_home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    board.trust()
    return board.client_home


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory):
    """test_convmlp for ONNX Runtime FP32 (a few seconds to make)."""
    return api.bundle("test_convmlp", "ort", out=tmp_path_factory.mktemp("device-bundles") / "test_convmlp")


def test_doctor_on_the_device_gives_this_machines_facts(board):
    result = invoke("doctor", "--device", "board", "--json")
    assert result.returncode == 0, result.stderr
    facts, here = json.loads(result.stdout), LocalDevice().describe()
    python3 = subprocess.run(["python3", "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, cwd=board.device_home).stdout.strip()
    assert facts["home"] == str(board.device_home) and facts["python"] == python3  # the device's own python3
    for key in ("machine", "system", "cpu", "cores", "cpu_flags", "memory_total_mb", "gpus", "tensorrt"):
        assert facts[key] == here[key], key
    shown = invoke("doctor", "--device", f"tester@127.0.0.1:{board.port}")
    assert shown.returncode == 0 and f"Python {python3}" in shown.stdout and "CPU features: " in shown.stdout


def test_verify_on_the_device_uploads_and_sets_up_once_then_reuses_both(board, small_bundle):
    first = api.verify(small_bundle.path, device="board")
    assert first.passed and first.runner.endswith(" on board") and first.platform == "linux/x86_64"
    assert first.device["uploaded"] and first.device["bundle"].startswith(str(board.device_home))
    placed = board.device_home / first.device["bundle"].removeprefix(str(board.device_home) + "/")
    venv = board.device_home / first.device["python"].removeprefix(str(board.device_home) + "/")
    stamps = placed.stat().st_mtime_ns, venv.parent.parent.stat().st_mtime_ns
    result = invoke("verify", str(small_bundle.archive), "--device", "board")  # the archive: the same content
    assert result.returncode == 0, result.stderr
    assert "golden: PASS" in result.stdout and "run.py: onnxruntime" in result.stdout
    assert "bundle already there" in result.stdout and "runtime reused" in result.stdout
    again = api.verify(small_bundle.path, device="board")
    assert not again.device["uploaded"] and not again.device["runtime_created"] and again.passed
    assert (placed.stat().st_mtime_ns, venv.parent.parent.stat().st_mtime_ns) == stamps
    assert again.device["seconds"]["put"] < 2 and again.device["seconds"]["prepare"] < 2
    leftovers = [p.name for p in placed.parent.iterdir() if "incoming" in p.name]
    assert leftovers == [], leftovers


def test_a_bundle_off_its_golden_outputs_fails_on_the_device_with_exit_1(board, small_bundle, tmp_path):
    import numpy as np

    name = "golden/outputs.logits.bin"
    golden = np.fromfile(small_bundle.path / name, dtype="<f4")
    off = edited(small_bundle.path, tmp_path / "off", files={name: (golden + 1.0).astype("<f4").tobytes()})
    result = invoke("verify", str(off), "--device", "board")
    assert result.returncode == 1, result.stderr
    assert "golden: FAIL" in result.stdout and "failed its golden check" in result.stderr


def test_a_changed_host_key_is_refused_in_one_line_even_with_accept_new(board, small_bundle):
    board.trust(asyncssh.generate_private_key("ssh-ed25519"))
    for extra in ((), ("--accept-new-host-key",)):
        result = invoke("doctor", "--device", "board", *extra)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "not the one known_hosts has for it" in result.stderr
        assert f"ssh-keygen -R '[127.0.0.1]:{board.port}'" in result.stderr
    assert board.host_key.export_public_key().decode().split()[1] not in board.known_hosts.read_text()


def test_a_new_host_is_refused_until_accept_new_adds_its_key(board):
    board.known_hosts.unlink()
    refused = invoke("doctor", "--device", "board")
    assert refused.returncode == 2 and "is not in known_hosts" in refused.stderr
    assert "--accept-new-host-key" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert invoke("doctor", "--device", "board", "--accept-new-host-key").returncode == 0
    line = board.known_hosts.read_text()
    assert line.startswith(f"[127.0.0.1]:{board.port} ssh-ed25519 ")
    assert board.host_key.export_public_key().decode().split()[1] in line
    assert invoke("doctor", "--device", "board").returncode == 0  # the added key is trusted next time


def test_unreachable_port_and_refused_login_are_one_line_each(board, tmp_path):
    import socket

    with socket.socket() as closed:  # a port nothing listens on: bound, never listening
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        refused = invoke("doctor", "--device", f"tester@127.0.0.1:{port}")
    assert refused.returncode == 2 and "connection refused" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    (board.client_home / ".ssh" / "id_ed25519").rename(tmp_path / "key")
    try:
        denied = invoke("doctor", "--device", "board")
    finally:
        (tmp_path / "key").rename(board.client_home / ".ssh" / "id_ed25519")
    assert denied.returncode == 2 and "refused authentication as tester" in denied.stderr
    assert "ssh-copy-id board" in denied.stderr and len(denied.stderr.strip().splitlines()) == 1


def remote_processes(marker: str) -> list[str]:
    listed = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in listed.splitlines() if marker in line and "ps -eo" not in line]


def test_a_step_past_its_time_out_is_ended_on_the_device(board):
    from uninext_deploy.devices.base import parse_destination
    from uninext_deploy.errors import UserError

    start = time.monotonic()
    with SshDevice(parse_destination("board"), timeout=1) as device:
        with pytest.raises(UserError, match="ran past its time-out of 1 s and was ended there"):
            device.step("the hanging step", "sleep 31.4159")
    assert time.monotonic() - start < 10
    assert remote_processes("sleep 31.4159") == []


def test_a_dropped_connection_is_one_line_and_the_run_is_ended_by_the_device(board):
    import threading

    from uninext_deploy.devices.base import parse_destination
    from uninext_deploy.errors import UserError

    with SshDevice(parse_destination("board"), timeout=3) as device:
        threading.Timer(1.0, board.server.drop).start()
        with pytest.raises(UserError, match="the connection to board dropped during the long step"):
            device.step("the long step", "sleep 27.1828")
    deadline = time.monotonic() + 15
    while remote_processes("sleep 27.1828") and time.monotonic() < deadline:  # the device's own timeout ends it
        time.sleep(0.2)
    assert remote_processes("sleep 27.1828") == []


def test_ctrl_c_ends_the_remote_process(board, client_home):
    """Ctrl-C in a client process of its own (a SIGINT to pytest itself could land after the test on a loaded
    machine, and with torch and OpenVINO loaded the suite once died of it): the remote step ends with it."""
    import os
    import signal
    import sys

    marker = "sleep 16.1803"
    # Ctrl-C delivered and handled as in a terminal: a job started in the background of a non-interactive shell
    # inherits SIGINT ignored, and a runner may start us with it blocked; either way the interrupt never came and
    # the step ran its 16 s to the end (twice in fresh-clone runs here)
    code = ("import signal; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "from uninext_deploy.devices.base import parse_destination\n"
            "from uninext_deploy.devices.ssh import SshDevice\n"
            "with SshDevice(parse_destination('board'), timeout=60) as device:\n"
            f"    device.step('the long step', {marker!r})\n")
    client = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "HOME": str(client_home)},
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not remote_processes(marker) and time.monotonic() < deadline and client.poll() is None:
            time.sleep(0.1)
        assert remote_processes(marker), client.communicate(timeout=10)
        client.send_signal(signal.SIGINT)
        _, stderr = client.communicate(timeout=30)
    finally:
        client.kill()
    assert client.returncode != 0 and "KeyboardInterrupt" in stderr
    deadline = time.monotonic() + 10
    while remote_processes(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert remote_processes(marker) == []


def test_a_signed_bundle_is_checked_on_the_device_with_the_key_put_beside_it(board, small_bundle, tmp_path):
    """The host's check passes, then run.py checks the signature again on the device, with the key put there.
    The bundle is signed after it was made, so its requirements.txt (and venv, shared with the other tests:
    a second one would cost ~12 s) lacks the cryptography a `bundle --sign-key` bundle asks for: the device's
    refusal says so, which shows that the check runs there."""
    import shutil

    from uninext_deploy.device import signature
    from uninext_deploy.errors import UserError

    private, public, fingerprint = api.keygen(tmp_path / "keys")
    signed = tmp_path / "signed"
    shutil.copytree(small_bundle.path, signed)
    signature.sign(signed, signature.load_private_key(private))
    with pytest.raises(UserError, match="run.py --verify failed on board: checking a signature needs the "
                                        "cryptography package"):
        api.verify(signed, device="board", public_key=public)
    placed = [p for p in board.device_home.rglob("key.pem") if p.read_bytes() == public.read_bytes()]
    assert len(placed) == 1 and "incoming" not in str(placed[0])


def test_profile_on_the_device_times_the_bundle_with_its_own_run_py(board, small_bundle):
    """Load, first run and steady state apart, every timed run back, peak memory and the device's state."""
    result = invoke("profile", "--artifact", str(small_bundle.path), "--device", "board", "--iters", "20",
                    "--warmup", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    latency, times = report["latency"], report["times_ms"]
    assert report["device"] == "board" and report["machine"] == os.uname().machine and len(times) == 20
    assert latency["runs"] == 20 and latency["min_ms"] == min(times)
    assert latency["min_ms"] <= latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"] <= max(times)
    assert report["load_ms"] > 0 and report["first_ms"] > 0 and 10 < report["peak_rss_mb"] < 1000
    assert report["runner"]["runtime"] == "onnxruntime" and report["record"]["bundle"].startswith(
        str(board.device_home))
    for moment in ("before", "after"):
        assert report["state"][moment]["cpus"] == os.cpu_count() and report["state"][moment]["load_1m"] >= 0
    busy = report["state"]["before"]["load_1m"] > 0.5 * os.cpu_count()
    assert any(w.startswith("busy: ") for w in report["warnings"]) == busy
    shown = invoke("profile", "-m", "test_convmlp", "--device", "board", "--iters", "5", "--warmup", "1")
    assert shown.returncode == 0, shown.stderr
    assert "Latency test_convmlp batch 1 on board" in shown.stdout and "device state: governor" in shown.stdout


@pytest.mark.parametrize("args, message", [
    (("--public-key", "key.pem"), "--public-key checks a bundle on a device; add --device DEST"),
    (("--device", "board", "--per-layer"), "--per-layer times layers here only"),
    (("--device", "board", "--seconds", "2"), "--seconds is not for --device (run.py --bench counts runs)"),
])
def test_profile_on_a_device_refuses_what_it_cannot_do_in_one_line(board, small_bundle, args, message):
    result = invoke("profile", "--artifact", str(small_bundle.path), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_an_artifact_that_is_not_a_bundle_is_refused_on_a_device_in_one_line(board, tmp_path):
    artifact = api.export("test_convmlp", "ort", out=tmp_path / "a")
    result = invoke("profile", "--artifact", str(artifact.path), "--device", "board")
    assert result.returncode == 2 and "is an artifact, not a bundle; a device runs bundles" in result.stderr


def test_bundle_on_the_device_is_proven_there_before_it_is_written(board, tmp_path):
    result = invoke("bundle", "-m", "test_convmlp", "--device", "board", "--out", str(tmp_path / "b"), "--json")
    assert result.returncode == 0, result.stderr
    verified = json.loads(result.stdout)["manifest"]["bundle"]["verified"]
    here, there = verified["linux/x86_64"], verified["linux/x86_64 on board"]
    facts = LocalDevice().describe()  # the board's commands run on this machine
    assert there["passed"] and there["runner"].startswith("run.py: onnxruntime ") and there["runner"].endswith(" on board")
    assert there["device"] == {"name": "board", "board": facts["board"], "cpu": facts["cpu"],
                               "machine": facts["machine"], "python": there["device"]["python"]}
    assert there["device"]["python"]
    assert there["metrics"]["cosine"] == pytest.approx(here["metrics"]["cosine"], abs=1e-6)
    refused = invoke("bundle", "-m", "test_convmlp", "--device", "board", "--platform", "linux/arm64",
                     "--out", str(tmp_path / "arm"))
    assert refused.returncode == 2 and not (tmp_path / "arm").exists()
    assert "board is linux/x86_64, the bundle is for linux/arm64: bundle for it with --platform linux/x86_64" \
        in refused.stderr


def test_parity_on_the_device_compares_its_outputs_with_pytorch_and_this_machine(board):
    """The artifact, packaged as its bundle, runs there on the photos and seeded inputs; its outputs come back
    as raw float32 and are held to the precision's tolerances and to this machine's run."""
    result = invoke("parity", "-m", "test_convmlp", "--batches", "1", "--random-inputs", "2", "--device", "board",
                    "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)["runs"][0]
    device, here = run["device"], run
    assert device["runner"].startswith("onnxruntime ") and device["runner"].endswith(f" on board ({os.uname().machine})")
    assert device["images"]["samples"] == here["images"]["samples"] and device["random"]["samples"] == 2
    assert device["images"]["cosine"] == pytest.approx(here["images"]["cosine"], abs=1e-9)
    assert device["vs_host"]["max_abs"] == 0.0  # the same runtime, build and CPU: the same numbers
    shown = invoke("parity", "-m", "test_convmlp", "--batches", "1", "--random-inputs", "1", "--device", "board")
    assert shown.returncode == 0 and "device vs host" in shown.stdout and " on board (" in shown.stdout


def test_parity_of_an_existing_bundle_runs_that_bundle_on_the_device(board, small_bundle):
    result = invoke("parity", "--artifact", str(small_bundle.archive), "--device", "board", "--random-inputs", "1",
                    "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)["runs"][0]
    assert run["passed"] and run["device"]["vs_host"]["max_abs"] == 0.0 and " on board (" in run["device"]["runner"]


def test_a_second_run_on_a_busy_device_waits_for_the_lease_then_fails_in_one_line(board, small_bundle):
    """Another run holding the device's lease (flock on its cache root's lease file, as a run of ours holds it):
    the second waits half its time-out, then says so; once the lease is free it runs."""
    import shutil
    import signal

    if shutil.which("flock") is None:
        pytest.skip("the lease is flock(1)'s (util-linux); this machine has none")
    root = board.device_home / ".cache" / "uninext-deploy" / "device"
    root.mkdir(parents=True, exist_ok=True)
    api.verify(small_bundle.path, device="board")  # upload and venv first, so that the runs below are quick
    holder = subprocess.Popen(["flock", str(root / "lease"), "sleep", "30"], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["flock", "-n", str(root / "lease"), "true"]).returncode == 0:
            assert time.monotonic() < deadline, "the holder never took the lease"
            time.sleep(0.05)
        start = time.monotonic()
        with pytest.raises(UserError, match=r"another run held board for 2 s \(its lease: one run at a time"):
            api.verify(small_bundle.path, device=api.DeviceOptions("board", timeout=4))
        assert 2 <= time.monotonic() - start < 8
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # flock and its sleep, which holds the lease too
        holder.wait()
    assert api.verify(small_bundle.path, device=api.DeviceOptions("board", timeout=4)).passed


def test_optimize_on_the_device_times_every_candidate_there_and_picks_the_fastest_there(board, tmp_path):
    from uninext_deploy.results import OptimizeResult

    out = tmp_path / "optimized"
    result = invoke("optimize", "-m", "test_convmlp", "--targets", "ort", "--precisions", "fp32", "--precisions",
                    "fp16", "--min-cosine", "0.99", "--iters", "10", "--device", "board", "--out", str(out))
    assert result.returncode == 0, result.stderr
    found = OptimizeResult.load(out / "results.json")
    timed = [c for c in found.candidates if c.passed]
    assert found.device["name"] == "board" and found.device["machine"] == os.uname().machine and len(timed) == 2
    assert all(c.device_latency.runs == 10 and c.latency.runs == 10 for c in timed)  # 5 turns of 2 there
    assert found.best is min(timed, key=lambda c: c.device_latency.p50_ms)
    assert "device p50 ms" in result.stdout and "device p50 ms" in (out / "report.md").read_text()
    assert f"on board {found.best.device_latency.p50_ms:.2f} ms" in (out / "report.md").read_text()


def big_folder(where, megabytes: int):
    """A folder of ``megabytes`` of random data (incompressible) to upload."""
    import numpy as np

    where.mkdir()
    (where / "data.bin").write_bytes(np.random.default_rng(0).bytes(megabytes << 20))
    return where


def nothing_of(folder, board) -> bool:
    """Whether the device holds neither ``folder``'s bundle nor a half-made one of it."""
    bundles = board.device_home / ".cache" / "uninext-deploy" / "device" / "bundles"
    digest = tree_digest(folder)
    return not bundles.exists() or not any(p.name.startswith(digest) for p in bundles.iterdir())


def test_a_full_disk_on_the_device_is_one_line_and_leaves_nothing(board, tmp_path):
    folder = big_folder(tmp_path / "big", 8)
    board.server.file_limit_kb = 1024  # 1 MB files at most there
    try:
        with SshDevice(parse_destination("board"), timeout=60) as device:
            with pytest.raises(UserError, match=r"the upload to board failed: its disk is full or a file-size limit "
                                                r"stopped it \(8\.4 MB to write\); free space there"):
                device.put(folder)
    finally:
        board.server.file_limit_kb = None
    assert nothing_of(folder, board)
    with SshDevice(parse_destination("board"), timeout=60) as device:  # with room again it lands whole
        placed = device.put(folder)
    assert placed.uploaded and Path(placed.path, "data.bin").stat().st_size == 8 << 20


def test_a_connection_dropped_mid_upload_leaves_no_half_bundle(board, tmp_path):
    import threading

    folder = big_folder(tmp_path / "big", 64)
    with SshDevice(parse_destination("board"), timeout=60) as device:
        threading.Timer(0.3, board.server.drop).start()
        with pytest.raises(UserError, match="the connection to board dropped during the upload"):
            device.put(folder)
    deadline = time.monotonic() + 10
    while not nothing_of(folder, board) and time.monotonic() < deadline:  # the device's trap cleans up
        time.sleep(0.1)
    assert nothing_of(folder, board)
    with SshDevice(parse_destination("board"), timeout=60) as device:
        placed = device.put(folder)
    assert placed.uploaded and Path(placed.path, "data.bin").stat().st_size == 64 << 20


@pytest.mark.slow  # 63 s on a CI run: two bundles and the runner compiled there
def test_bundle_cpp_builds_its_cpp_runner_on_the_device_with_its_cmake_and_verifies_there(board, tmp_path, monkeypatch):
    """The device is this machine, which has no libwebp-dev: its cmake stops in one line naming the package, and
    nothing is written; given the libraries `apt-get install ... libwebp-dev` would (CMAKE_PREFIX_PATH), the
    runner builds there and its --verify is the bundle's proof on the device beside run.py's."""
    with pytest.raises(UserError, match=r"building the C\+\+ runner \(cmake -S cpp -B build\) failed on board: "
                                        r"libwebp not found: apt-get install libwebp-dev"):
        api.bundle("test_convmlp", "ort", cpp=True, device="board", out=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    monkeypatch.setitem(board.server.env, "CMAKE_PREFIX_PATH", str(cpp_runner.Toolchain().prefix("linux/x86_64")))
    made = api.bundle("test_convmlp", "ort", cpp=True, device="board", out=tmp_path / "b")
    proof = made.manifest["bundle"]["verified"]["linux/x86_64 on board (C++)"]
    assert proof["passed"] and proof["runner"].startswith("cpp/build/runner: onnxruntime ") and \
        proof["runner"].endswith(" on board"), proof
    assert proof["device"]["name"] == "board"
    builds = board.device_home / ".cache" / "uninext-deploy" / "device" / "builds"
    assert [p.name for p in builds.iterdir() if "incoming" in p.name] == []
    assert made.manifest["bundle"]["verified"]["linux/x86_64 on board"]["passed"]


def test_fetch_brings_a_file_back_byte_for_byte_and_says_when_there_is_none(board, tmp_path):
    folder = tmp_path / "built"
    folder.mkdir()
    (folder / "model.engine").write_bytes(bytes(range(256)) * 4096 + b"\r\n\x00")  # every byte value, 1 MB
    with SshDevice(parse_destination("board"), timeout=60) as device:
        placed = device.put(folder)
        assert device.fetch(f"{placed.path}/model.engine", tmp_path / "back.engine")
        assert not device.fetch(f"{placed.path}/model.plan", tmp_path / "none")
    assert (tmp_path / "back.engine").read_bytes() == (folder / "model.engine").read_bytes()
    assert not (tmp_path / "none").exists()
