"""Small building blocks shared by the three families.

Layout helpers take channels and spatial size as Python integers fixed at build time, so that an
exported graph holds constant reshapes instead of Shape/Gather arithmetic.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

HEAD_DIM = 32  # every attention of the three families uses 32-channel heads
Q_SCALE = HEAD_DIM ** -0.5  # the softmax scale, folded into whatever produces q (:func:`scale_q`)


def tokens_to_nchw(x: Tensor, channels: int, height: int, width: int) -> Tensor:
    """(B, H*W, C) -> (B, C, H, W), reshaping to a constant shape."""
    return x.transpose(1, 2).reshape(-1, channels, height, width)


def nchw_to_tokens(x: Tensor, channels: int, tokens: int) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C) with a constant target shape (``flatten`` traces to Shape arithmetic)."""
    return x.reshape(-1, channels, tokens).transpose(1, 2)


def unstack(x: Tensor, parts: int) -> tuple[Tensor, ...]:
    """The ``parts`` items of x's leading axis (packed q/k/v, or k/v), exported as one Slice each.

    ``unbind`` exports a Split and a Squeeze per item. Merging the leading axis into the next and chunking
    leaves one Slice per item, which ONNX Runtime fuses back into one Split: UniNeXt-T cross-shaped ran
    1-2.5 % faster in four races (FP32, 2 threads), local window 0.7 %; UniNet-B1's attention ops (Split,
    Squeeze, Transpose, Reshape, MatMul) went 4.5 -> 3.8 ms in ORT's profile. ``parts`` is a Python int:
    read from the traced shape, the chunk exports as a tensor sequence.
    """
    return x.flatten(0, 1).chunk(parts)


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T) v over (B, heads, N, HEAD_DIM) tensors, for a q that arrives scaled by ``Q_SCALE``.

    Written out (not F.scaled_dot_product_attention) so exports hold plain MatMul/Softmax. Scaling q by a
    Multiply here cost a node per attention that OpenVINO's CPU plugin does not fuse into its attention
    kernel; folded into q's projection (:func:`scale_q`), UniNeXt-T at 224 (FP32, 2 threads, one interleaved
    run each) ran 1.4 % (local window) and 2.9 % (cross-shaped) faster on OpenVINO, UniNet-B1 1.0 % (FP32, 12
    nodes fewer) and 0.9 % (INT8); ONNX Runtime, which had fused it into its MatMul, within noise.
    """
    return torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v


def scale_q(weight: Tensor, bias: Tensor, q_rows: int) -> tuple[Tensor, Tensor]:
    """A projection's weight (out, in) and bias with ``Q_SCALE`` folded into its first ``q_rows`` outputs (q's),
    which the export turns into constants."""
    like = {"dtype": weight.dtype, "device": weight.device}  # the meta device when counting MACs
    scale = torch.cat((torch.full((q_rows,), Q_SCALE, **like), torch.ones(weight.shape[0] - q_rows, **like)))
    return weight * scale[:, None], bias * scale


def conv_out(size: int, kernel: int = 3, stride: int = 2, padding: int = 1) -> int:
    """Output length of a convolution or pooling window along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


class Mlp(nn.Module):
    """Linear -> GELU (exact erf) -> Linear, the channel MLP used by all three families."""

    def __init__(self, dim: int, hidden: int, out: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))
