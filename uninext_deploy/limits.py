"""The one table of limits: every count, size and budget any command or API call takes, and the one-line error
for a value outside it. A leaf module (errors only), so the option groups, the model registry and the results
all check against it without importing each other."""

from __future__ import annotations

from .errors import UserError

MIN_OPSET = 17  # LayerNormalization as one node
MAX_OPSET = 20  # the TorchScript exporter's newest (torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
MAX_SIDE = 4096  # pixels; a static graph of more is no edge model (UniNeXt-T at 4096 would need ~60 GB)

# Every count, size and budget any command or API call takes: flag -> (lowest, highest, lowest allowed itself).
# The upper bounds keep an absurd value from running for days or exhausting memory before it fails.
LIMITS: dict[str, tuple[float, float, bool]] = {
    "--batch": (1, 256, True), "--batches": (1, 256, True),
    "--threads": (1, 1024, True), "--warmup": (0, 100_000, True), "--iters": (1, 1_000_000, True),
    "--seconds": (0, 86_400, False),
    "--calib-size": (1, 10_000, True), "--random-inputs": (1, 10_000, True),
    "--seed": (0, 2**32 - 1, True), "--num-classes": (1, 1_000_000, True), "--dla-core": (0, 7, True),
    "--opset": (MIN_OPSET, MAX_OPSET, True), "--input-size": (1, MAX_SIDE, True),
    "--int8-min-cosine": (0, 1, False), "--int8-weight-bits": (7, 8, True),
    "--min-cosine": (0, 1, False), "--max-top1-drop": (0, 100, True), "--device-timeout": (0, 86_400, False),
    "--workers": (0, 256, True),
}


def allowed(flag: str) -> str:
    """"from 1 to 256", "above 0 and at most 1": the range of ``flag`` as people read it."""
    low, high, closed = LIMITS[flag]
    return f"from {low} to {high}" if closed else f"above {low} and at most {high}"


def within(flag: str, value) -> None:
    """One UserError naming the allowed range when ``value`` (None: not given) is outside ``flag``'s limits
    (NaN included)."""
    if value is None:
        return
    low, high, closed = LIMITS[flag]
    if isinstance(value, bool) or not (low <= value <= high if closed else low < value <= high):
        raise UserError(f"{flag} must be {allowed(flag)}, got {value}")
