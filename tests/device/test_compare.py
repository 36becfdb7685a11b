"""The shipped comparison (device/compare.py): metrics on known arrays, structured misses, batching."""

import numpy as np
import pytest

from uninext_deploy.device.compare import (TOLERANCES, Metrics, Miss, batched, compare, compare_arrays, failures,
                                           golden_arrays, golden_outputs, run_batched)


def logits(ref: np.ndarray) -> dict:
    return {"logits": ref}


def test_identical_outputs_are_perfect():
    ref = np.random.default_rng(0).standard_normal((3, 1000))
    m = compare(logits(ref), logits(ref.copy()))
    assert m.max_abs == 0 and m.cosine == pytest.approx(1.0) and m.sqnr_db == float("inf")
    assert m.top1 == 1.0 and m.top5 == 1.0
    assert failures(m, TOLERANCES["fp32"]) == []


def test_metrics_on_known_errors():
    ref = np.array([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0]])
    out = ref.copy()
    out[0, 5] = 10.0  # a new arg-max, and a 12-unit error
    m = compare_arrays(ref, out)
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
    assert compare_arrays(ref, out).top1 == 0.5 and compare_arrays(ref, out).top1_decisive == 1.0
    out[0, 1] = 11.0  # the clear winner is overtaken by an outlier error: counted
    assert compare_arrays(ref, out).top1_decisive == 0.0


def test_non_finite_outputs_fail_every_tolerance():
    ref = np.ones((1, 10))
    out = ref.copy()
    out[0, 0] = np.nan
    for tolerance in TOLERANCES.values():
        assert failures(compare(logits(ref), logits(out)), tolerance)


def test_batching_pads_and_trims():
    x = np.arange(5)[:, None].astype(np.float32)
    assert [b.ravel().tolist() for b in batched(x, 2)] == [[0, 1], [2, 3], [4, 4]]
    doubled = run_batched(lambda b: {"a": b * 2, "b": b[:, :0]}, x, 2)
    assert list(doubled) == ["a", "b"] and doubled["b"].shape == (5, 0)
    np.testing.assert_array_equal(doubled["a"], x * 2)


def test_every_output_is_held_to_the_tolerance_and_the_worst_is_named():
    rng = np.random.default_rng(0)
    ref = {"stage1": rng.standard_normal((2, 8, 4, 4)), "stage2": rng.standard_normal((2, 16, 2, 2))}
    out = {"stage1": ref["stage1"] + 1e-7, "stage2": ref["stage2"] + 0.5 * rng.standard_normal((2, 16, 2, 2))}
    m = compare(ref, out)
    assert m.output == "stage2" and list(m.outputs) == ["stage1", "stage2"]
    assert m.cosine == m.outputs["stage2"].cosine < m.outputs["stage1"].cosine
    assert m.top1 is None and m.outputs["stage1"].top5 is None  # feature maps have no classes
    misses = failures(m, TOLERANCES["fp32"], "images")
    assert {x.output for x in misses} == {"stage2"} and "cosine of stage2" in str(misses[-1])
    # top-1 bounds do not apply to feature maps; they do to logits
    assert failures(m, {"top1": (1.0, "min")}) == []
    assert failures(compare_arrays(np.eye(3), np.eye(3)[::-1]), {"top1": (1.0, "min")})
    assert Metrics.from_dict(m.as_dict()) == m
    with pytest.raises(ValueError, match="differ"):
        compare(ref, {"stage2": out["stage2"], "stage1": out["stage1"]})


def test_golden_files_round_trip_every_output(tmp_path):
    outputs = {"stage1": np.ones((2, 3)), "stage2": np.zeros((2, 1, 1))}
    np.savez(tmp_path / "golden.npz", **golden_arrays(outputs, np.arange(2)))
    golden = np.load(tmp_path / "golden.npz")
    assert golden["inputs"].tolist() == [0, 1]
    loaded = golden_outputs(golden)
    assert list(loaded) == ["stage1", "stage2"] and all((loaded[k] == v).all() for k, v in outputs.items())
