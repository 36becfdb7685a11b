"""The exported ONNX is static, simplified, loadable by ONNX Runtime, described and reproducible."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from uninext_deploy.export.graph import SHAPE_ARITHMETIC_OPS
from uninext_deploy.models import create_model


@pytest.fixture(scope="module")
def onnx_model(convmlp_s_artifact):
    return onnx.load(str(convmlp_s_artifact.file("model")))


def test_graph_is_static_and_free_of_shape_arithmetic(onnx_model):
    ops = {n.op_type for n in onnx_model.graph.node}
    assert not ops & SHAPE_ARITHMETIC_OPS
    assert "Gather" not in ops
    dims = [d.dim_value for d in onnx_model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 224, 224]


def test_opset_keeps_layernorm_as_one_node(onnx_model):
    assert onnx_model.opset_import[0].version >= 17
    assert sum(n.op_type == "LayerNormalization" for n in onnx_model.graph.node) == 25  # one per norm of ConvMLP-S, as measured on the official export
    assert not any(n.op_type in ("ReduceMean", "Pow", "Sqrt") and "norm" in n.name.lower()
                   for n in onnx_model.graph.node)


def test_ir_version_is_one_the_installed_runtime_reads(onnx_model):
    assert onnx_model.ir_version <= 10
    ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_metadata_describes_the_model(onnx_model, convmlp_s_artifact):
    meta = {p.key: p.value for p in onnx_model.metadata_props}
    assert meta["model"] == "convmlp_s" and meta["precision"] == "fp32"
    assert json.loads(meta["input_shape"]) == [1, 3, 224, 224]
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406]
    assert meta["version.onnxruntime"] == ort.__version__
    manifest = convmlp_s_artifact.manifest
    assert manifest["onnx"]["nodes"] == len(onnx_model.graph.node)
    assert manifest["preprocessing"]["crop"] == [224, 224]


def test_onnx_matches_pytorch(convmlp_s_artifact):
    model = create_model("convmlp_s")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    session = ort.InferenceSession(str(convmlp_s_artifact.file("model")), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"input": x})[0], model(torch.from_numpy(x)).numpy(),
                                   atol=1e-4, rtol=0)


def test_same_seed_gives_the_same_onnx_bytes(tmp_path, convmlp_s_artifact):
    from uninext_deploy import api

    again = api.export("convmlp_s", "onnx", out=tmp_path / "again")
    assert again.manifest["files"]["model.onnx"]["sha256"] == convmlp_s_artifact.manifest["files"]["model.onnx"]["sha256"]


def test_every_node_keeps_its_module_scope(onnx_model):
    # divergence location and INT8 exclusions match on these scopes
    assert all(n.name.startswith("/") for n in onnx_model.graph.node)
    assert sum(n.op_type == "MatMul" for n in onnx_model.graph.node) == 32
