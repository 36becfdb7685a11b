"""ONNX Runtime behind the Backend interface: the artifact is the ONNX; its version range comes from the graph;
per-layer profiles name real nodes; it is the stand-in that checks other runtimes' graphs."""

import numpy as np
import pytest

from uninext_deploy import api
from uninext_deploy.backends import get_backend, graph_requirement
from uninext_deploy.backends.ort import onnxruntime_requirement


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return api.export("test_convmlp", "ort", out=tmp_path_factory.mktemp("ort") / "a")


@pytest.mark.parametrize("opset, ir, minimum", [(17, 8, "1.13"), (20, 9, "1.17")])
def test_version_range_comes_from_opset_and_ir(tmp_path, opset, ir, minimum):
    """ORT's version matrix: opset 17 (IR 8) came with 1.13, opset 20 with 1.17 (1.16.3 refuses our graphs)."""
    made = api.export("test_convmlp", "ort", opset=opset, out=tmp_path / "a")
    requirement = onnxruntime_requirement(made.file("model"))
    assert requirement == {"package": "onnxruntime", "min": minimum, "below": "2",
                           "why": f"ONNX opset {opset}, IR version {ir}"}
    assert graph_requirement(get_backend("ort"), made) == {"runtime": "ort", "requirement": requirement}


def test_per_layer_profile_names_real_nodes(artifact):
    layers = get_backend("ort").load(artifact, threads=1).per_layer_profile(
        np.zeros(artifact.input_shape, np.float32), runs=2)
    assert len(layers) > 10 and layers[0]["ms"] >= layers[-1]["ms"]
    assert {"Conv", "LayerNormalization"} <= {layer["op"] for layer in layers}


def test_cpu_runners_report_no_device_time(artifact):
    assert get_backend("ort").load(artifact).device_times_ms(3) == []



def test_fp16_probe_tells_how_this_cpu_runs_a_real_fp16_graph(tmp_path):
    """The probe's two nodes speak for a whole model: ONNX Runtime's graph of an FP16 ConvMLP, optimized for
    this CPU, has Casts of its own (beyond those our graph has around FP32 normalisations) exactly when the
    probe says so, on any CPU."""
    import onnx
    import onnxruntime as ort

    from uninext_deploy.backends.ort import INSERTED_CAST, fp16_runs_through_casts

    fp16 = api.export("test_convmlp", "ort", precision="fp16", out=tmp_path / "fp16")
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(str(fp16.file("model")), options, providers=["CPUExecutionProvider"])
    inserted = [node for node in onnx.load(options.optimized_model_filepath).graph.node
                if node.op_type == "Cast" and node.name.startswith(INSERTED_CAST)]
    assert bool(inserted) is fp16_runs_through_casts()
