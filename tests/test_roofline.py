"""The GEMM roofline micro-benchmark: it computes the product, and is measured once per machine and cached."""

import json

import numpy as np
import onnx
import pytest

from uninext_deploy import roofline
from uninext_deploy.device import runtimes


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_gemm_microbenchmark_computes_the_product(tmp_path, precision):
    path = tmp_path / "gemm.onnx"
    onnx.save(roofline.gemm_graph(precision, size=64), str(path))
    run = runtimes.load("ort", path, precision, threads=1).run
    a = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    weights = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32) / 8
    (y,) = run(a).values()
    y, expected = y.ravel(), (a @ weights).ravel()
    assert np.dot(y, expected) / np.linalg.norm(y) / np.linalg.norm(expected) > (0.999 if precision == "int8" else 0.9999999)


def test_roofline_is_measured_once_per_machine_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = roofline.roofline("ort", "fp32", threads=1)
    again = roofline.roofline("ort", "fp32", threads=1)
    assert first == again and first["gflops"] > 1 and roofline.machine_id() in first["key"]
    cached = json.loads((tmp_path / "uninext-deploy" / "roofline.json").read_text())
    assert list(cached) == [first["key"]] and f"ort {runtimes.installed_version('ort')}" in first["key"]


def test_a_ceiling_below_a_rate_just_reached_is_measured_again(tmp_path, monkeypatch):
    """A ceiling cached in a busy moment is below what a model then reaches: measured again, the higher kept."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = roofline.roofline("ort", "fp32", threads=1)
    path = tmp_path / "uninext-deploy" / "roofline.json"
    busy = json.loads(path.read_text())
    busy[first["key"]]["gflops"] = 0.5
    path.write_text(json.dumps(busy))
    assert roofline.roofline("ort", "fp32", threads=1)["gflops"] == 0.5  # nothing says it is wrong
    again = roofline.roofline("ort", "fp32", threads=1, at_least=0.6)
    assert again["gflops"] > 1 and json.loads(path.read_text())[first["key"]]["gflops"] == again["gflops"]
