"""Streamed INT8 calibration: the ranges of ONNX Runtime's one-pass calibration, in memory flat in the samples."""

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, load_tensors_data

from uninext_deploy import api
from uninext_deploy.export.onnx import export_onnx
from uninext_deploy.export.placement import QUANTIZED_OPS
from uninext_deploy.export.ranges import PERCENTILE, calibrate, keep_to_allowed_cpus
from uninext_deploy.options import CALIB_METHODS, Int8Options
from uninext_deploy.pipeline import build_model, int8_request

METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
           "percentile": CalibrationMethod.Percentile}


@pytest.fixture(scope="module")
def float_graph(tmp_path_factory):
    """test_uninext's float graph (shapes inferred, as the quantizer reads it) and 8 calibration samples."""
    torch_model = build_model(api.ModelOptions("test_uninext"), 1)
    path = tmp_path_factory.mktemp("ranges") / "float.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(export_onnx(torch_model).model), str(path))
    return path, int8_request(torch_model, Int8Options(calib_size=8)).samples


class _AllAtOnce:
    """ORT's reader protocol over every sample: its calibrators then keep all of them for one histogram."""

    def __init__(self, samples):
        self._inputs = iter({"input": x} for x in samples.batches(1))

    def get_next(self):
        return next(self._inputs, None)


@pytest.mark.parametrize("method", CALIB_METHODS)
def test_ranges_are_the_one_pass_calibrations(float_graph, tmp_path, method):
    path, samples = float_graph
    calibrator = create_calibrator(path, list(QUANTIZED_OPS), str(tmp_path / "augmented.onnx"),
                                   calibrate_method=METHODS[method], extra_options={"percentile": PERCENTILE})
    keep_to_allowed_cpus(calibrator)  # the stream's threads: on a pinned test worker, 1 thread against ORT's 2 moved
    # a MatMul's range by 1.4e-6 (its sums in another order)
    with contextlib.redirect_stdout(io.StringIO()):
        calibrator.collect_data(_AllAtOnce(samples))
        one_pass = calibrator.compute_data()
    calibrate(path, samples, 1, method, tmp_path / "cache.json", QUANTIZED_OPS)
    streamed = load_tensors_data(tmp_path / "cache.json")
    assert streamed.calibration_method == METHODS[method] and set(streamed.keys()) == set(one_pass.keys())
    assert len(one_pass.keys()) > 50
    for name in one_pass:
        np.testing.assert_allclose(np.asarray(streamed[name].range_value, dtype=np.float32),
                                   np.asarray(one_pass[name].range_value, dtype=np.float32), rtol=1e-6, err_msg=name)


PEAK_OF_CALIBRATION = """
import sys, tempfile
from pathlib import Path
import onnx
from uninext_deploy import api
from uninext_deploy.export.onnx import export_onnx
from uninext_deploy.export.peak_memory import peak_mb, restart_peak
from uninext_deploy.export.placement import QUANTIZED_OPS
from uninext_deploy.export.calibration import calibration_set
from uninext_deploy.export.ranges import calibrate
from uninext_deploy.pipeline import build_model

count, method = int(sys.argv[1]), sys.argv[2]
folder = Path(tempfile.mkdtemp())
torch_model = build_model(api.ModelOptions("test_uninext", input_size=160), 1)
onnx.save(onnx.shape_inference.infer_shapes(export_onnx(torch_model).model), str(folder / "float.onnx"))
samples = calibration_set(torch_model.spec.preprocessing(160, 160), None, count)
restart_peak()
before = peak_mb()
calibrate(folder / "float.onnx", samples, 1, method, folder / "cache.json", QUANTIZED_OPS)
print(peak_mb() - before)
"""


def _calibration_peak_mb(count: int, method: str) -> int:
    """How far calibrating on ``count`` samples raises the resident memory of a fresh interpreter, in MB."""
    result = subprocess.run([sys.executable, "-c", PEAK_OF_CALIBRATION, str(count), method], capture_output=True,
                            text=True, timeout=600, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_calibration_memory_does_not_grow_with_the_samples():
    """test_uninext at 160 px, percentile: ORT's one-pass calibrator raised the peak by 127 MB on 8 samples and by
    630 MB on 32 (measured); streamed, by 9 and 8 MB, one sample's activations and their histograms."""
    few, many = _calibration_peak_mb(8, "percentile"), _calibration_peak_mb(32, "percentile")
    # 24 more samples held would add ~500 MB; the allocator alone moved a streamed peak from 7 to 18 MB once
    assert many <= few + 64, (few, many)
