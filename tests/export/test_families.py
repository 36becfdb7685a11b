"""One model per mixer / family exports to a static graph and passes ORT FP32 parity at static batches.

At small inputs: every static grid, window, stripe and reduction path is exercised at any supported size
(the smallest each mixer takes without degenerating: CSWin's stripes need multiples of 112). The default run
takes each mixer's tiny test_* variant (the same block code, one block a stage: seconds, not the 60 s the
full-size ones took on 2 cores); the slow run adds the full-size T variants and UniNet-B0 (B1 is B0's
architecture at 224 px, so B0 stands for both), and the slow sweep every variant at its native size.
"""

import onnx
import pytest

from uninext_deploy import api
from uninext_deploy.artifact import Artifact
from uninext_deploy.backends.trt_check import check_for_tensorrt
from uninext_deploy.models import list_models

TINY = {n: 112 if "cswin" in n else 64 for n in list_models("uninext") if n.startswith("test_")}
ONE_PER_MIXER = {n: 112 if "cswin" in n else 96 for n in list_models("uninext", official=True)
                 if n.startswith("uninext_t")}
CASES = [*TINY.items(), ("test_uninet", 64),
         *(pytest.param(n, size, marks=pytest.mark.slow) for n, size in [*ONE_PER_MIXER.items(), ("uninet_b0", 96)])]
# batch 1 too where a mixer reshapes windows or stripes (the official CSWin code baked the traced batch in);
# the conv mixers and PVT's reduction reshape only with -1 for the batch, so batch 2 alone shows it is right
BOTH_BATCHES = ("uninext_t", "uninext_t_cswin", "uninet_b0", "test_uninext", "test_uninext_cswin", "test_uninet")


@pytest.mark.parametrize("name, size", CASES)
def test_exports_and_passes_ort_fp32_parity_at_static_batches(tmp_path, name, size):
    batches = (1, 2) if name in BOTH_BATCHES else (2,)
    report = api.parity(name, "ort", batches=batches, input_size=size, out=tmp_path, inputs=api.Inputs(random=1))
    assert report.passed, report.as_dict()
    for run in report.runs:
        assert run.images.cosine > 0.99999 and run.images.top1 == 1.0
    manifest = Artifact.open(tmp_path / "b2").manifest
    assert manifest["input"]["shape"][0] == 2 and manifest["onnx"]["nodes"] > 100
    graph = onnx.load(str(tmp_path / "b2" / "model.onnx"))
    assert check_for_tensorrt(graph, (10, 3)).as_dict()["errors"] == []  # JetPack 6's TensorRT would parse it
    ops = manifest["onnx"]["ops"]
    assert ops.get("Gelu", 0) > 0 and "Erf" not in ops  # exact GELU as one node (opset 20)
    assert ops.get("LayerNormalization", 0) > 0 and not {"Shape", "ConstantOfShape"} & set(ops)


def test_uninet_graph_has_bn_folded_and_keeps_se_and_layer_scale_recognisable(tmp_path):
    artifact = api.export("uninet_b0", "onnx", out=tmp_path / "b0")
    graph = onnx.load(str(artifact.file("model"))).graph
    assert not [n for n in graph.node if n.op_type == "BatchNormalization"]
    names = [n.name for n in graph.node]
    assert sum("hard_sigmoid" in n and n.endswith("Clip") for n in names) == 11  # one SE gate per conv block
    gammas = {i for n in graph.node if n.op_type == "Mul" for i in n.input if "gamma_" in i}
    assert len(gammas) == 2 * (4 + 8)  # gamma_1 and gamma_2 of every attention block


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models(official=True))
def test_every_other_variant_passes_ort_fp32_parity(tmp_path, name):
    report = api.parity(name, "ort", batches=(1,), out=tmp_path, inputs=api.Inputs(random=1))
    assert report.passed, report.as_dict()
