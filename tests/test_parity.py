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


def test_convmlp_s_passes_ort_fp32_parity_at_batch_1_and_2(tmp_path):
    report = api.parity("convmlp_s", "ort", batches=(1, 2), out=tmp_path)
    assert report.passed, report.as_dict()
    assert [r.batch for r in report.runs] == [1, 2]
    for run in report.runs:
        assert run.images.samples >= 8 and run.random.samples == 4
        assert run.images.rel_max_abs < 1e-5 and run.images.top1 == 1.0
    assert (tmp_path / "b2" / "model.onnx").exists()


def test_a_broken_artifact_fails_and_names_the_layer_where_it_diverges(tmp_path):
    import onnx
    from onnx import numpy_helper

    from uninext_deploy.artifact import Artifact, write_manifest
    from uninext_deploy.models import create_model

    artifact = api.export("convmlp_s", "ort", input_size=64, out=tmp_path / "a")
    model = onnx.load(str(artifact.file("model")))
    for init in model.graph.initializer:  # plant a bug: one weight of stage 1, block 1 is off by 5 %
        if init.name == "stages.1.blocks.1.connect.weight":
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.05, init.name))
    onnx.save(model, str(artifact.file("model")))
    write_manifest(artifact.path, artifact.manifest, {n: e["role"] for n, e in artifact.manifest["files"].items()})

    torch_model = create_model("convmlp_s", input_size=64)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    run = api.check_artifact(Artifact.open(artifact.path), torch_model, x, x)
    assert not run.passed and any("cosine" in f for f in run.failed)
    assert "first diverges at module stages.1.blocks.1.connect " in run.divergence


def test_a_correct_graph_has_no_divergence(convmlp_s_artifact):
    from uninext_deploy.divergence import locate_divergence
    from uninext_deploy.models import create_model

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    assert locate_divergence(create_model("convmlp_s"), convmlp_s_artifact.onnx_file(), x,
                             TOLERANCES["fp32"]) is None


def test_module_paths_follow_the_exporter_scopes():
    from uninext_deploy.divergence import module_path

    assert module_path("/conv_stages/conv_blocks.0/conv_blocks.0.2/Relu_output_0") == "conv_stages.conv_blocks.0.2"
    assert module_path("/stages.0/blocks.1/channel_mlp1/fc2/Add_output_0") == "stages.0.blocks.1.channel_mlp1.fc2"
    assert module_path("_v_740") is None and module_path("/ReduceMean_output_0") is None


def test_int8_is_gated_on_real_photos_and_only_reports_noise(tmp_path):
    from uninext_deploy.export.precision import Int8Options
    from uninext_deploy.models import create_model

    artifact = api.export("convmlp_s", "ort", precision="int8", input_size=64, out=tmp_path / "a",
                          int8=Int8Options(calib_size=16))
    model = create_model("convmlp_s", input_size=64)
    photos = api.images_tensor(model.spec.preprocessing(64, 64), None)
    noise = 50 * np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)  # far outside calibration
    run = api.check_artifact(artifact, model, photos, noise)
    assert run.random.cosine < 0.99 and not any(f.startswith("random") for f in run.failed)
    fp32 = api.export("convmlp_s", "ort", input_size=64, out=tmp_path / "f")
    assert api.check_artifact(fp32, model, photos, noise).random.samples == 2  # fp32 gates both sets


def test_latency_summary_percentiles():
    from uninext_deploy.profile import measure, summarize

    stats = summarize([1.0, 2.0, 3.0, 4.0, 10.0], batch=2)
    assert stats.runs == 5 and stats.min_ms == 1.0 and stats.p50_ms == 3.0 and stats.mean_ms == 4.0
    assert stats.p99_ms == pytest.approx(9.76) and stats.throughput == pytest.approx(500.0)
    calls = []
    assert measure(lambda: calls.append(1), batch=1, warmup=3, iters=7).runs == 7 and len(calls) == 10


def test_cpu_runners_report_no_device_time(convmlp_s_artifact):
    from uninext_deploy.backends import get_backend

    report = api.profile("convmlp_s", "ort", input_size=64, iters=3, warmup=1, eager=False)
    assert report.device is None and report.as_dict()["device"] is None
    assert get_backend("ort").load(convmlp_s_artifact).device_times_ms(3) == []
