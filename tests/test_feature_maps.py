"""Feature maps end to end: multi-output static export per family, per-output parity at two batch sizes,
every precision graph and backend, INT8 judged on the worst output, bundles whose run.py extracts and
verifies every output without torch (and on the emulated aarch64 CPU), custom heads with their labels."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch

from conftest import invoke
from test_bundle import ARM, device_run, unpack
from uninext_deploy import api
from uninext_deploy.artifact import Artifact
from uninext_deploy.backends.trt_check import check_for_tensorrt
from uninext_deploy.device.imaging import load_rgb, preprocess
from uninext_deploy.images import SHIPPED_IMAGES
from uninext_deploy.models import create_model, get_spec, list_models

FAMILY_MODELS = ("test_uninext", "test_convmlp", "test_uninet")  # every stage path of each family, at 64 px


def features(name: str, stages="all", **kwargs) -> api.ModelOptions:
    return api.ModelOptions(name, features=stages, **kwargs)


@pytest.mark.parametrize("name", FAMILY_MODELS)
def test_feature_export_has_one_static_output_per_stage_and_passes_parity_at_batch_1_and_2(tmp_path, name):
    report = api.parity(features(name), "ort", batches=(1, 2), out=tmp_path, inputs=api.Inputs(random=2))
    assert report.passed, report.summary()
    spec = get_spec(name)
    names = [f.name for f in spec.features]
    for run in report.runs:
        for metrics in (run.images, run.random):
            assert list(metrics.outputs) == names and metrics.output in names
            assert all(m.cosine > 0.99999 and m.top1 is None for m in metrics.outputs.values())
    manifest = Artifact.open(tmp_path / "b2").manifest
    assert [o["name"] for o in manifest["outputs"]] == names
    assert [(o["channels"], o["stride"]) for o in manifest["outputs"]] == [(f.channels, f.stride) for f in spec.features]
    graph = onnx.load(str(tmp_path / "b2" / "model.onnx")).graph
    shapes = [[d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.output]
    assert [o.name for o in graph.output] == names
    assert shapes == [o["shape"] for o in manifest["outputs"]]
    assert all(s[0] == 2 and s[1] == f.channels and s[2] == -(-64 // f.stride) for s, f in zip(shapes, spec.features))
    assert not {"Shape", "ConstantOfShape", "Gemm"} & {n.op_type for n in graph.node}  # no shape arithmetic, no head
    golden = np.load(tmp_path / "b2" / "golden.npz")
    assert sorted(golden.files) == sorted(["inputs", *(f"outputs.{n}" for n in names)])


@pytest.mark.parametrize("target, precision", [("ort", "fp16"), ("ort", "int8"), ("openvino", "fp32"),
                                               ("openvino", "int8"), ("trt", "int8")])
def test_every_precision_graph_and_backend_takes_a_feature_model(tmp_path, target, precision):
    """FP16-typed and QDQ graphs, OpenVINO IR (NNCF INT8 included) and TensorRT's check and scripts on a
    three-output graph; TensorRT's accuracy on its stand-in, as for any TensorRT artifact here. (INT8 with a
    --int8-min-cosine of 0.99 on the worst map; at 0.999 NNCF's fallback returned all 12 blocks, one NNCF run
    each, 35 s: the fallback on several outputs is the next test's.)"""
    model = features("test_uninet", "1,3,stage6")
    int8 = api.Int8Options(calib_size=8, min_cosine=0.99)
    report = api.parity(model, target, precision=precision, batches=(1,), out=tmp_path, inputs=api.Inputs(random=1),
                        int8=int8)
    metrics = report.runs[0].images
    assert list(metrics.outputs) == ["stage2", "stage4", "stage6"]
    assert report.passed, report.summary()
    manifest = Artifact.open(tmp_path / "b1").manifest
    if target == "trt":
        graph = onnx.load(str(tmp_path / "b1" / "model.onnx"))
        assert check_for_tensorrt(graph, (10, 3)).as_dict()["errors"] == []
        assert (tmp_path / "b1" / "build_engine.sh").exists() and manifest["outputs"][2]["name"] == "stage6"
    if target == "openvino":
        import openvino as ov

        ir = ov.Core().read_model(str(tmp_path / "b1" / "model.xml"))
        assert [o.get_any_name() for o in ir.outputs] == ["stage2", "stage4", "stage6"]


def test_int8_calibration_and_fallback_work_on_the_worst_output(tmp_path):
    """The fallback target holds for the worst of the outputs: blocks return to float until even the
    deepest, least accurate map meets it."""
    target = 0.997  # without fallback, ConvMLP-S's stage 4 map reaches 0.986 to PyTorch here: it fails
    artifact = api.export(features("convmlp_s", input_size=64), "ort", precision="int8", out=tmp_path / "a",
                          int8=api.Int8Options(calib_size=8, min_cosine=target))
    graph = artifact.manifest["precision_graph"]
    assert graph["fallback"] and graph["cosine_vs_float"] >= target and graph["met_target"]
    model = create_model("convmlp_s", input_size=64, features_only=True)
    from uninext_deploy.parity import check_artifact
    from uninext_deploy.pipeline import images_tensor

    photos = images_tensor(model.spec.preprocessing(64, 64), None)
    run = check_artifact(artifact, model, photos, photos[:1])
    assert run.passed and run.images.cosine == min(m.cosine for m in run.images.outputs.values())


def test_a_broken_feature_graph_names_the_output_and_the_module_where_it_diverges(tmp_path):
    from onnx import numpy_helper

    from uninext_deploy.artifact import write_manifest
    from uninext_deploy.parity import check_artifact

    artifact = api.export(features("test_convmlp"), "ort", out=tmp_path / "a")
    graph = onnx.load(str(artifact.file("model")))
    for init in graph.graph.initializer:  # a bug in the last stage: the first three maps stay right
        if init.name == "stages.2.blocks.0.connect.weight":
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.05, init.name))
    onnx.save(graph, str(artifact.file("model")))
    write_manifest(artifact.path, artifact.manifest, {n: e["role"] for n, e in artifact.manifest["files"].items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    run = check_artifact(Artifact.open(artifact.path), create_model("test_convmlp", features_only=True), x, x)
    assert {miss.output for miss in run.failed} == {"stage4"} and run.images.output == "stage4"
    assert "first diverges at module stages.2.blocks.0.connect " in run.divergence


@ARM
def test_feature_parity_on_the_emulated_aarch64_cpu_checks_every_output(tmp_path):
    report = api.parity(features("test_convmlp", "1,3"), "ort", batches=(1,), out=tmp_path,
                        platform=api.PlatformOptions("linux/arm64"), inputs=api.Inputs(random=1))
    assert report.passed, report.summary()
    arm = report.runs[0].arm
    assert list(arm["images"].outputs) == list(arm["vs_host"].outputs) == ["stage2", "stage4"]


def test_bad_feature_requests_are_one_line_errors_before_any_work():
    for args, message in [(("--features", "7"), "stage index 7 is out of range; test_convmlp has stages 0-3"),
                          (("--features", "1,1"), "stage stage2 (1) is given twice"),
                          (("--features", ","), "needs at least one stage"),
                          (("--features", "all", "--num-classes", "3"), "feature model has none"),
                          (("--num-classes", "0"), "--num-classes must be from 1 to 1000000")]:
        result = invoke("export", "-m", "test_convmlp", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_models_shows_each_variants_feature_stages():
    result = invoke("models", "--family", "convmlp", "--json")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert [(f["channels"], f["stride"]) for f in rows["convmlp_s"]["features"]] == [(64, 4), (128, 8), (256, 16),
                                                                                     (512, 32)]


@pytest.fixture(scope="module")
def feature_bundle(tmp_path_factory):
    return api.bundle(features("test_uninext", "stage2,stage4"), "ort",
                      out=tmp_path_factory.mktemp("bundles") / "uninext-features").path


def test_feature_bundle_extracts_and_verifies_every_output_without_torch(feature_bundle, torch_free_python, tmp_path):
    manifest = json.loads((feature_bundle / "manifest.json").read_text())
    assert [o["name"] for o in manifest["outputs"]] == ["stage2", "stage4"] and manifest["bundle"]["labels"] is None
    assert not (feature_bundle / "labels.txt").exists() and "stage4" in (feature_bundle / "README.md").read_text()
    folder = unpack(feature_bundle.with_name(feature_bundle.name + ".tar.gz"), tmp_path / "device")
    verified = device_run(torch_free_python, folder, "--verify", "--json")
    assert verified.returncode == 0, verified.stderr
    metrics = json.loads(verified.stdout)["verify"]["metrics"]
    assert list(metrics["outputs"]) == ["stage2", "stage4"] and metrics["output"] in ("stage2", "stage4")

    photo = SHIPPED_IMAGES / "chelsea_cat.jpg"
    extracted = device_run(torch_free_python, folder, str(photo), "--save", str(tmp_path / "maps"), "--json")
    assert extracted.returncode == 0, extracted.stderr
    report = json.loads(extracted.stdout)
    maps = report["features"][0]["features"]
    model = create_model("test_uninext", features_only=True, out_indices=(1, 3))
    with torch.inference_mode():
        expected = model(torch.from_numpy(preprocess(load_rgb(photo), manifest["preprocessing"]))[None])
    for entry, reference in zip(maps, expected):
        saved = np.load(report["saved"][0][entry["output"]])
        assert list(saved.shape) == entry["shape"] == list(reference.shape[1:])
        np.testing.assert_allclose(saved, reference[0].numpy(), rtol=1e-4, atol=1e-4)
        assert entry["mean"] == pytest.approx(float(saved.mean()), abs=1e-6)
    text = device_run(torch_free_python, folder, str(photo))
    assert "stage2   64x8x8" in text.stdout and "seeded" in (folder / "README.md").read_text()

    golden = folder / "golden/outputs.stage2.bin"  # a changed output is caught by its checksum first, then by the verdict
    (np.fromfile(golden, "<f4") * 1.01).astype("<f4").tofile(golden)
    assert device_run(torch_free_python, folder, "--verify").returncode == 2


@ARM
def test_feature_bundle_verified_on_emulated_aarch64(feature_bundle):
    result = invoke("verify", str(feature_bundle), "--platform", "linux/arm64")
    assert result.returncode == 0, result.stderr
    assert "golden stage2: PASS" in result.stdout and "golden stage4: PASS" in result.stdout
    assert "emulated aarch64" in result.stdout


def test_custom_head_bundle_carries_the_users_labels(tmp_path, torch_free_python):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"part-{i}" for i in range(5)) + "\n")
    made = api.bundle(api.ModelOptions("test_convmlp", num_classes=5), "ort", labels=labels, out=tmp_path / "b")
    manifest = made.manifest
    assert manifest["outputs"][0]["shape"] == [1, 5] and manifest["model"]["num_classes"] == 5
    classified = device_run(torch_free_python, made.path, str(SHIPPED_IMAGES / "chelsea_cat.jpg"), "--json",
                            "--save", str(tmp_path / "logits"))
    report = json.loads(classified.stdout)
    top = report["predictions"][0]["top"]
    assert len(top) == 5 and {p["label"] for p in top} == {f"part-{i}" for i in range(5)}
    saved = np.load(report["saved"][0]["logits"])
    assert saved.shape == (5,) and saved.argmax() == top[0]["class"]

    numbered = api.bundle(api.ModelOptions("test_convmlp", num_classes=3), "ort", out=tmp_path / "n")
    assert (numbered.path / "labels.txt").read_text().splitlines() == ["class 0", "class 1", "class 2"]
    shutil.rmtree(tmp_path / "n")
    wrong = invoke("bundle", "-m", "test_convmlp", "--num-classes", "4", "--labels", str(labels), "--out",
                   str(tmp_path / "w"))
    assert wrong.returncode == 2 and "names 5 classes but the model has 4" in wrong.stderr
    assert not (tmp_path / "w").exists()
    on_features = invoke("bundle", "-m", "test_convmlp", "--features", "all", "--labels", str(labels))
    assert on_features.returncode == 2 and "a --features bundle has none" in on_features.stderr


def test_optimize_judges_a_feature_model_by_cosine_only():
    result = invoke("optimize", "-m", "test_convmlp", "--features", "all", "--max-top1-drop", "1")
    assert result.returncode == 2 and "give --min-cosine instead" in result.stderr


def test_profile_times_a_feature_model(tmp_path):
    report = api.profile(features("test_convmlp"), "ort", timing=api.TimingOptions(threads=1, warmup=1, iters=3),
                         eager=True, out=tmp_path / "p")
    assert report.backend.runs == 3 and report.eager.runs == 3


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models(official=True))
def test_every_variant_exports_its_feature_maps_within_fp32_tolerance(tmp_path, name):
    report = api.parity(features(name), "ort", batches=(1,), out=tmp_path, inputs=api.Inputs(random=1))
    assert report.passed, report.summary()
    assert len(report.runs[0].images.outputs) == len(get_spec(name).features)


def test_default_folder_names_tell_feature_and_custom_head_models_apart():
    from uninext_deploy.pipeline import model_tag

    assert model_tag("uninext_t") == model_tag("uninext_t", None, 1000) == "uninext_t"
    assert model_tag("uninext_t", (0, 1, 2, 3)) == "uninext_t-features"
    assert model_tag("uninext_t", (1, 3)) == "uninext_t-stage2+stage4"
    assert model_tag("convmlp_s", None, 10) == "convmlp_s-10classes"
