"""models/layers.py: the layers the three families share (named apart from tests/test_layers.py, the package layering)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uninext_deploy.export.onnx import export_onnx
from uninext_deploy.models.layers import HEAD_DIM, attention, scale_q, unstack


class _Unstack(nn.Module):
    input_shape, output_names = (2, 5, 3, 4), ("out",)

    def forward(self, x):
        q, k, v = unstack(x.permute(2, 0, 1, 3), 3)
        return q @ k.transpose(-2, -1) @ v


def test_unstack_is_unbind_and_exports_one_slice_per_item():
    x = torch.randn(2, 5, 3, 4).permute(2, 0, 1, 3)
    assert all(torch.equal(a, b) for a, b in zip(unstack(x, 3), x.unbind(0), strict=True))
    ops = [node.op_type for node in export_onnx(_Unstack()).model.graph.node]
    assert ops.count("Slice") == 3 and not {"Split", "Squeeze", "SplitToSequence", "SequenceAt"} & set(ops), ops


class _ScaledAttention(nn.Module):
    input_shape, output_names = (1, 6, 2 * HEAD_DIM), ("out",)

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(2 * HEAD_DIM, 6 * HEAD_DIM)

    def forward(self, x):
        qkv = F.linear(x, *scale_q(self.qkv.weight, self.qkv.bias, 2 * HEAD_DIM))
        q, k, v = unstack(qkv.reshape(1, 6, 3, 2, HEAD_DIM).permute(2, 0, 3, 1, 4), 3)
        return attention(q, k, v)


def test_scale_q_folds_the_softmax_scale_into_q_alone_and_exports_no_multiply():
    module, x = _ScaledAttention(), torch.randn(1, 6, 2 * HEAD_DIM)
    q, k, v = module.qkv(x).reshape(1, 6, 3, 2, HEAD_DIM).permute(2, 0, 3, 1, 4).unbind(0)
    with torch.no_grad():
        torch.testing.assert_close(module(x), F.scaled_dot_product_attention(q, k, v))  # its default 1/sqrt(32)
    ops = [node.op_type for node in export_onnx(module).model.graph.node]
    assert "Mul" not in ops and "Div" not in ops and ops.count("MatMul") >= 2, ops
