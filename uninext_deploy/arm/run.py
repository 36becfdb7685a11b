"""What the emulated aarch64 CPU runs, and how close its outputs must come to this machine's (the emulated CPU is
a device, devices/emulated.py: parity runs each artifact's bundle there as on a board).

Tolerances: FP32 ARM vs x86 within 1e-5 of the output scale (measured on ConvMLP-S: 2.6e-7). INT8 and FP16 kernels differ by design between the two ISAs (fixed-point vs float requantisation,
native FP16 on ARM), by one quantization step per layer; that bounds a single quantized output by one step, but our logits come from a float classifier after dozens of quantized layers whose step
differences compound, so they have no single step to count; even with the classifier quantized
(``--quantize-classifier``), ARM and x86 differed by 9 output steps on ConvMLP-S (0.137 vs a step of
0.0152) while each stayed as close to PyTorch as the other (cosine 0.994 vs 0.993). ARM vs x86 must agree on top-1 wherever the
decision is not a near-tie (parity.Metrics.top1_decisive), with cosine >= 0.99 (measured, ConvMLP-S INT8:
0.9956 at 64 px and 0.9972 at 96 px; one near-tied photo of eleven flipped).
"""

from __future__ import annotations

from ..device import runtimes
from ..errors import UserError

CROSS_TOLERANCES = {
    "fp32": {"rel_max_abs": (1e-5, "max")},
    "fp16": {"cosine": (0.99, "min"), "top1_decisive": (1.0, "min")},
    "int8": {"cosine": (0.99, "min"), "top1_decisive": (1.0, "min")},
}


def runtime_for(backend: str, precision: str, cpu: str) -> str:
    """The runtime that runs ``backend``'s artifacts on the emulated ``cpu``, or one UserError saying why
    this combination cannot run there (from the runtime's declaration)."""
    problem = runtimes.emulation_problem(backend, precision, cpu)
    if problem:
        raise UserError(problem)
    return backend
