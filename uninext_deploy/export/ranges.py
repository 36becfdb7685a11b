"""INT8 activation ranges gathered in a stream: each calibration batch is folded into running statistics and
released, so memory does not grow with the number of samples.

ONNX Runtime's calibrators do the work: they choose the tensors, add them to the graph's outputs, run it,
and turn statistics into ranges (the percentile search, the entropy threshold), written as the calibration
cache that ``quantize_static`` then reads. Given all samples at once, their histogram calibrators keep every
intermediate output of every sample before making one histogram (UniNeXt-T at 224, 32 samples: 8.7 GB peak;
UniNeXt-B: 17.7 GB). Fed batch by batch (or through ``CalibStridedMinMax``) they merge histograms instead,
and the merged histogram is not the one-pass one, which moved the ranges (issue 15: cosine to PyTorch
0.9978 -> 0.9947 on UniNeXt-T):

- percentile (symmetric: a histogram of |x|): the first batch fixes the bin width at its own range / 2048
  and the lower edge at its own smallest |x|; later batches append bins of that width up to their maximum,
  and drop values below that first edge. The bins, and so the percentile, depend on the first batch.
- entropy: each batch whose maximum passes the running threshold widens the histogram by whole bins of the
  first batch's width, so it ends with more than its 128 bins. With 128 bins and 128 quantized bins the
  one-pass threshold search has a single candidate (the whole range); the widened histogram has many, and
  the search then clips ranges the one-pass calibration keeps.

Both come from bins that follow the order of the data. Here the bins are the one-pass ones: a first pass
folds each tensor's extremes (min, max, smallest and largest |x|), a second folds each batch into a
histogram over exactly the one-pass bins (the same count and range, so np.histogram's uniform-bin
arithmetic counts each value into the same bin), and ORT's own collector computes the ranges from it. The
ranges equal the one-pass ones; the price is a second forward pass over the samples. MinMax needs none of
this: ORT's MinMaxCalibrater reduces each tensor to its min and max inside the graph.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..console import progress
from ..device import runtimes
from .calibration import CalibrationSet
from .quiet import quiet

PERCENTILE = 99.999  # of |x|, the default method's clip point (ORT's default too)


def calibrate(float_path: Path, samples: CalibrationSet, batch: int, method: str, cache: Path,
              op_types: tuple[str, ...]) -> None:
    """Compute the activation ranges of the graph at ``float_path`` by ``method`` (minmax, entropy, percentile)
    on ``samples`` and write them to ``cache``, ORT's calibration cache (``quantize_static``'s
    ``calibration_cache_path``)."""
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        HistogramCollector,
        TensorsData,
        create_calibrator,
        save_tensors_data,
    )

    ort_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[method]
    with quiet():
        calibrator = create_calibrator(float_path, list(op_types), str(cache.with_suffix(".augmented.onnx")),
                                       calibrate_method=ort_method, extra_options={"percentile": PERCENTILE})
    keep_to_allowed_cpus(calibrator)
    name = calibrator.infer_session.get_inputs()[0].name
    passes = 1 if method == "minmax" else 2
    with progress.step(f"calibrating INT8 ranges ({method}) on {len(samples)} samples"
                       + ("" if passes == 1 else ", in two passes (extremes, then histograms)"),
                       total=passes * len(samples)) as calibrating:
        def fed() -> Iterator[dict]:
            for x in samples.batches(batch):
                yield {name: x}
                calibrating.advance(len(x))

        if method == "minmax":
            calibrator.collect_data(_Reader(fed()))
            ranges = calibrator.compute_data()
        else:
            tensors = sorted(calibrator.tensors_to_calibrate)

            def each_batch(fold) -> None:
                for inputs in fed():
                    found = calibrator.infer_session.run(tensors, inputs)
                    fold(found)
                    del found  # one batch's activations at a time: released before the next batch runs

            extremes = _Extremes(len(tensors))
            each_batch(extremes.fold)
            histograms = _Histograms(extremes.folded, calibrator.symmetric, calibrator.num_bins)
            each_batch(histograms.fold)
            collector = HistogramCollector(method=calibrator.method, symmetric=calibrator.symmetric,
                                           num_bins=calibrator.num_bins,
                                           num_quantized_bins=calibrator.num_quantized_bins,
                                           percentile=calibrator.percentile, scenario=calibrator.scenario)
            collector.histogram_dict = dict(zip(tensors, histograms.entries()))
            with quiet():  # its "Finding optimal threshold" prints
                ranges = TensorsData(ort_method, collector.compute_collection_result())
    save_tensors_data(ranges, cache)
    Path(calibrator.augmented_model_path).unlink()


def keep_to_allowed_cpus(calibrator) -> None:
    """Remake the calibrator's session (ORT's own options: no graph optimization) on the CPUs this process may
    use, where they are fewer than the machine's (:func:`runtimes.allowed_cpus`)."""
    import onnxruntime as ort

    threads = runtimes.allowed_cpus()
    if threads:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        calibrator.infer_session = ort.InferenceSession(calibrator.augmented_model_path, options,
                                                        providers=calibrator.execution_providers)


class _Reader:
    """ORT's CalibrationDataReader protocol over an iterator of input dicts."""

    def __init__(self, inputs: Iterator[dict]):
        self._inputs = inputs

    def get_next(self):
        return next(self._inputs, None)


class _Extremes:
    """Per tensor over every batch folded in: (min, max, smallest |x|, largest |x|), float32 (tensors, 4)."""

    def __init__(self, count: int):
        self.folded = np.array([[np.inf, -np.inf, np.inf, -np.inf]] * count, dtype=np.float32)

    def fold(self, arrays: list[np.ndarray]) -> None:
        for row, x in zip(self.folded, arrays):
            magnitude = np.abs(x)
            row[:] = (min(row[0], x.min()), max(row[1], x.max()),
                      min(row[2], magnitude.min()), max(row[3], magnitude.max()))


class _Histograms:
    """Per tensor, the histogram ORT's HistogramCollector makes of all batches at once, summed batch by batch.

    Symmetric (percentile): of |x| over [smallest |x|, largest |x|], entries (hist, edges, min, max).
    Otherwise (entropy): of x over [-T, T], T the largest |x|, entries (hist, edges, min, max, T).
    """

    def __init__(self, extremes: np.ndarray, symmetric: bool, bins: int):
        self.extremes, self.symmetric, self.bins = extremes, symmetric, bins
        spans = [(lo, hi) if symmetric else (-hi, hi) for _, _, lo, hi in extremes]
        # the edges np.histogram makes of data spanning these (a zero span widened by 0.5 each side)
        self.edges = [np.histogram(np.array(span, dtype=np.float32), bins)[1] for span in spans]
        self.counts = [np.zeros(bins, dtype=np.int64) for _ in spans]

    def fold(self, arrays: list[np.ndarray]) -> None:
        for count, x, edges in zip(self.counts, arrays, self.edges):
            count += np.histogram(np.abs(x) if self.symmetric else x, self.bins, range=(edges[0], edges[-1]))[0]

    def entries(self) -> list[tuple]:
        return [(count, edges, low, high) + (() if self.symmetric else (largest,))
                for count, edges, (low, high, _, largest) in zip(self.counts, self.edges, self.extremes)]
