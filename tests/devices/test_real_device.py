"""On a real board, opted into: UNINEXT_TEST_DEVICE=DEST (user@host[:port] or a Host alias of ~/.ssh/config,
reachable with the keys and known_hosts of this user) runs these against it; the default run has none and
skips them, saying so. What they prove there: the bundle's own run.py verifies, times and matches PyTorch on
that board, for its platform."""

import os

import pytest

from uninext_deploy import api
from uninext_deploy.devices import open_device, platform_of

DEST = os.environ.get("UNINEXT_TEST_DEVICE")
pytestmark = [pytest.mark.device, pytest.mark.skipif(
    DEST is None, reason="no real device named: set UNINEXT_TEST_DEVICE=user@host to run these on one")]


@pytest.fixture(scope="module")
def board_platform():
    with open_device(DEST, timeout=600) as place:
        return platform_of(place.describe()["machine"])


def test_a_bundle_for_the_board_verifies_and_times_there(board_platform, tmp_path):
    made = api.bundle("test_convmlp", "ort", platform=api.PlatformOptions(board_platform), out=tmp_path / "b",
                      device=DEST)
    assert made.manifest["bundle"]["verified"][f"{board_platform} on {DEST}"]["passed"]
    timed = api.profile(artifact=made.path, device=DEST, timing=api.TimingOptions(iters=20, warmup=2))
    assert timed.latency.runs == 20 and 0 < timed.latency.min_ms <= timed.latency.p50_ms <= timed.latency.p99_ms


def test_parity_on_the_board(board_platform):
    report = api.parity("test_convmlp", "ort", batches=(1,), inputs=api.Inputs(random=1), device=DEST)
    assert report.passed and report.runs[0].device is not None, report.summary()


def test_a_tensorrt_bundle_builds_its_engine_there_and_brings_it_back(board_platform, tmp_path):
    with open_device(DEST, timeout=600) as place:
        facts = place.describe()
    if not facts["tensorrt"]:
        pytest.skip(f"{DEST} has no TensorRT (doctor --device {DEST}): the engine is built on a device that has it")
    made = api.bundle("test_convmlp", "trt", precision="fp16", platform=api.PlatformOptions(board_platform),
                      out=tmp_path / "b", device=DEST, fetch_engine=True)
    engine = made.manifest["bundle"]["engine"]
    assert engine["built_on"] == DEST and engine["tensorrt"] == facts["tensorrt"] and (made.path / engine["file"]).is_file()
    again = api.verify(made.path, device=DEST)  # the fetched engine is the one it runs: nothing built again
    assert again.passed, again
