"""The shipped comparison (device/compare.py): metrics on known arrays, structured misses, batching."""

import numpy as np
import pytest

from uninext_deploy.device.compare import TOLERANCES, Miss, batched, compare, failures, run_batched


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
    misses = failures(m, TOLERANCES["fp32"], "images")
    assert misses == [Miss("rel_max_abs", 4.0, 1e-4, "max", "images"), Miss("cosine", m.cosine, 0.99999, "min", "images")]
    assert [str(x) for x in misses] == ["images: rel_max_abs 4 > 0.0001", f"images: cosine {m.cosine:.6g} < 0.99999"]
    assert Miss.from_dict(misses[0].as_dict()) == misses[0]


def test_decisive_top1_counts_only_clear_decisions():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 1000))
    ref[0, 0] = 10.0  # a clear winner
    ref[1, :2] = [5.0, 4.9995]  # a near-tie
    out = ref + 1e-3 * rng.standard_normal(ref.shape)
    out[1, :2] = [4.9995, 5.0]  # the near-tie flips within the typical deviation: not counted
    assert compare(ref, out).top1 == 0.5 and compare(ref, out).top1_decisive == 1.0
    out[0, 1] = 11.0  # the clear winner is overtaken by an outlier error: counted
    assert compare(ref, out).top1_decisive == 0.0


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
