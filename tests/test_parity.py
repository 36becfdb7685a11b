"""Parity harness: ConvMLP-S on ONNX Runtime FP32 at batch 1 and 2, a planted bug named at its module,
INT8 gated on photos only, and existing artifacts checked as they are."""

import numpy as np
import pytest

from uninext_deploy import api
from uninext_deploy.device.compare import TOLERANCES
from uninext_deploy.parity import check_artifact
from uninext_deploy.pipeline import images_tensor


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
    run = check_artifact(Artifact.open(artifact.path), torch_model, x, x)
    assert not run.passed and any(miss.metric == "cosine" and miss.inputs == "images" for miss in run.failed)
    assert "first diverges at module stages.1.blocks.1.connect " in run.divergence


def test_a_correct_graph_has_no_divergence(convmlp_s_artifact):
    from uninext_deploy.divergence import locate_divergence
    from uninext_deploy.models import create_model

    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    assert locate_divergence(create_model("convmlp_s"), convmlp_s_artifact.onnx_file(), x,
                             TOLERANCES["fp32"]) is None


def test_module_paths_follow_the_exporter_scopes():
    from uninext_deploy.export.scopes import module_path

    assert module_path("/conv_stages/conv_blocks.0/conv_blocks.0.2/Relu_output_0") == "conv_stages.conv_blocks.0.2"
    assert module_path("/stages.0/blocks.1/channel_mlp1/fc2/Add_output_0") == "stages.0.blocks.1.channel_mlp1.fc2"
    assert module_path("_v_740") is None and module_path("/ReduceMean_output_0") is None


def test_int8_is_gated_on_real_photos_and_only_reports_noise(tmp_path):
    from uninext_deploy.options import Int8Options
    from uninext_deploy.models import create_model

    artifact = api.export("convmlp_s", "ort", precision="int8", input_size=64, out=tmp_path / "a",
                          int8=Int8Options(calib_size=16))
    model = create_model("convmlp_s", input_size=64)
    photos = images_tensor(model.spec.preprocessing(64, 64), None)
    noise = 50 * np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)  # far outside calibration
    run = check_artifact(artifact, model, photos, noise)
    assert run.random.cosine < 0.99 and not run.misses("random")
    fp32 = api.export("convmlp_s", "ort", input_size=64, out=tmp_path / "f")
    assert check_artifact(fp32, model, photos, noise).random.samples == 2  # fp32 gates both sets


def test_an_existing_artifact_is_checked_and_timed_as_it_is(convmlp_s_artifact, monkeypatch):
    def no_export(*args, **kwargs):
        raise AssertionError("an existing artifact must not be exported again")

    for module in ("parity", "profile"):
        monkeypatch.setattr(f"uninext_deploy.{module}.export", no_export)
    report = api.parity(artifact=convmlp_s_artifact.path, inputs=api.Inputs(random=1))
    assert report.passed and len(report.runs) == 1 and report.runs[0].artifact == str(convmlp_s_artifact.path)
    assert report.runs[0].images.rel_max_abs < 1e-5
    timed = api.profile(artifact=convmlp_s_artifact.path, timing=api.TimingOptions(iters=3, warmup=1), eager=False)
    assert timed.backend.runs == 3 and timed.device is None and timed.as_dict()["device"] is None


def test_a_tampered_artifact_is_refused_before_it_runs(convmlp_s_artifact, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(convmlp_s_artifact.path, copy)
    (copy / "golden.npz").write_bytes(b"x")
    with pytest.raises(api.UserError, match="golden.npz has 1 bytes"):
        api.parity(artifact=copy)


def test_a_lossy_int8_graph_is_said_at_export_and_a_failed_parity_says_what_to_try(tmp_path):
    """The tiny seeded UniNet with its classifier quantized on 2 calibration samples: cosine ~0.97 to its float
    graph, without fallback."""
    from uninext_deploy.export.precision import LossyInt8Warning

    with pytest.warns(LossyInt8Warning, match=r"--int8-min-cosine 0.99 returns its most sensitive blocks"):
        report = api.parity("test_uninet", "ort", precision="int8", batches=(1,), out=tmp_path,
                            int8=api.Int8Options(calib_size=2, quantize_classifier=True))
    assert not report.passed and "to try: --int8-min-cosine" in report.summary()
    assert "--calib-method" in report.summary() and "more --calib images" in report.summary()


@pytest.mark.parametrize("bits, saturates, first", [(8, True, "--int8-weight-bits 7 (this x86 CPU has no VNNI"),
                                                     (7, True, "--int8-min-cosine"), (8, False, "--int8-min-cosine")])
def test_failed_int8_parity_first_suggests_7_bit_weights_where_8_bit_ones_saturate(monkeypatch, bits, saturates,
                                                                                     first):
    from uninext_deploy.device import runtimes
    from uninext_deploy.parity import int8_remedy

    monkeypatch.setattr(runtimes, "int8_dot_saturates", lambda: saturates)
    assert int8_remedy({"precision_graph": {"weight_bits": bits}}).startswith(f"to try: {first}")


def test_parity_says_which_inference_precision_openvino_ran(tmp_path):
    pytest.importorskip("openvino")
    report = api.parity("test_convmlp", "openvino", batches=(1,), out=tmp_path)
    assert report.runs[0].runtime["inference_precision"] == "f32" and report.passed
    assert report.as_dict()["runs"][0]["runtime"]["runtime"] == "openvino"
