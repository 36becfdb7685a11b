"""models/layers.py: the layers the three families share (named apart from tests/test_layers.py, the package layering)."""

from __future__ import annotations

import torch
from torch import nn

from uninext_deploy.export.onnx import export_onnx
from uninext_deploy.models.layers import unstack


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
