"""Parity metrics on known arrays, and ConvMLP-S on ONNX Runtime FP32 at batch 1 and 2."""

import numpy as np
import pytest

from uninext_deploy import api
from uninext_deploy.parity import TOLERANCES, batched, compare, failures, run_batched


def test_identical_outputs_are_perfect():
    ref = np.random.default_rng(0).standard_normal((3, 1000))
    m = compare(ref, ref.copy())
    assert m.max_abs == 0 and m.cosine == pytest.approx(1.0) and m.sqnr_db == float("inf")
    assert m.top1 == 1.0 and m.top5 == 1.0
    assert failures(m, TOLERANCES["fp32"]) == []


def test_metrics_on_known_errors():
    ref = np.array([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0]])
    out = ref.copy()
    out[0, 5] = 10.0  # a new arg-max, and a 12-unit error
    m = compare(ref, out)
    assert m.max_abs == 12.0 and m.mean_abs == 2.0 and m.rel_max_abs == 4.0
    assert m.top1 == 0.0 and m.top5 == pytest.approx(4 / 5)
    assert m.sqnr_db == pytest.approx(10 * np.log10(19 / 144))
    assert m.cosine == pytest.approx(np.dot(ref[0], out[0]) / np.linalg.norm(ref) / np.linalg.norm(out))
    assert failures(m, TOLERANCES["fp32"]) == ["rel_max_abs 4 > 0.0001", f"cosine {m.cosine:.6g} < 0.99999"]


def test_non_finite_outputs_fail_every_tolerance():
    ref = np.ones((1, 10))
    out = ref.copy()
    out[0, 0] = np.nan
    for tolerance in TOLERANCES.values():
        assert failures(compare(ref, out), tolerance)


def test_batching_pads_and_trims():
    x = np.arange(5)[:, None].astype(np.float32)
    assert [b.ravel().tolist() for b in batched(x, 2)] == [[0, 1], [2, 3], [4, 4]]
    np.testing.assert_array_equal(run_batched(lambda b: b * 2, x, 2), x * 2)


def test_convmlp_s_passes_ort_fp32_parity_at_batch_1_and_2(tmp_path):
    report = api.parity("convmlp_s", "ort", batches=(1, 2), out=tmp_path)
    assert report.passed, report.as_dict()
    assert [r.batch for r in report.runs] == [1, 2]
    for run in report.runs:
        assert run.images.samples >= 8 and run.random.samples == 4
        assert run.images.rel_max_abs < 1e-5 and run.images.top1 == 1.0
    assert (tmp_path / "b2" / "model.onnx").exists()
