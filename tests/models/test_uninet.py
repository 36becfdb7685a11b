"""UniNet (ECCV 2022): official sizes, checkpoint layout, static shapes and the export-time BN fold.

Reference numbers are the values measured on the official code (Sense-X/UniNet@81ef332).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from uninext_deploy.errors import UserError
from uninext_deploy.models import count_macs, count_params, create_model, get_spec, list_models
from uninext_deploy.models.layers import nchw_to_tokens, tokens_to_nchw
from uninext_deploy.models.uninet import Attention, AttentionBlock, DWConvBlock, LocalDSM, LocalGlobalDSM

NAMES = [f"uninet_b{i}" for i in range(7)]


def _meta_model(name: str, height: int | None = None, width: int | None = None) -> nn.Module:
    spec = get_spec(name)
    with torch.device("meta"):
        return spec.build(1, height or spec.native_size, width or spec.native_size)


def _params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def _standalone_batchnorms(model: nn.Module) -> list[str]:
    """BatchNorms not directly after a conv in their Sequential, i.e. the ones exporters cannot fold."""
    found = []
    for seq_name, seq in model.named_modules():
        if isinstance(seq, nn.Sequential):
            for i, layer in enumerate(seq):
                if isinstance(layer, nn.BatchNorm2d) and (i == 0 or not isinstance(seq[i - 1], nn.Conv2d)):
                    found.append(f"{seq_name}.{i}")
    return found


def test_registry_entries():
    assert list_models("uninet", official=True) == NAMES
    expected_sizes = [160, 224, 256, 288, 320, 384, 448]
    for name, size in zip(NAMES, expected_sizes):
        spec = get_spec(name)
        assert spec.native_size == size
        assert spec.crop_pct == (0.875 if size < 320 else 1.0)
        assert spec.interpolation == "bicubic"
        assert spec.source == "Sense-X/UniNet@81ef332"
    assert get_spec("uninet_b4").preprocessing()["resize_exact"] is True
    assert get_spec("uninet_b1").preprocessing()["resize_short_side"] == 256


@pytest.mark.parametrize("name", list_models("uninet", official=True))
def test_params_and_macs_match_official(name):
    spec = get_spec(name)
    params = count_params(name)
    assert abs(params - spec.official_params) <= 0.005 * spec.official_params, params
    gmacs = count_macs(name) / 1e9
    assert abs(gmacs - spec.official_gmacs) <= 0.03 * spec.official_gmacs, gmacs


@pytest.mark.parametrize("name,tokens,heads", [
    ("uninet_b0", (100, 25), (4, 8)), ("uninet_b1", (196, 49), (4, 8)), ("uninet_b2", (256, 64), (4, 8)),
    ("uninet_b3", (324, 81), (5, 9)), ("uninet_b4", (400, 100), (6, 11)), ("uninet_b5", (576, 144), (7, 14)),
    ("uninet_b6", (784, 196), (8, 16)),
])
def test_attention_tokens_and_heads(name, tokens, heads):
    attention_dsms = [m for m in _meta_model(name).blocks if isinstance(m, LocalGlobalDSM)]
    assert [m.out_tokens for m in attention_dsms] == list(tokens)
    assert [m.heads for m in attention_dsms] == list(heads)


def test_b1_per_stage_parameters():
    model = _meta_model("uninet_b1")
    b = list(model.blocks)
    # Flat official index: DSMs at 1, 4, 9, 14, 19 between stages of 1, 2, 4, 4, 4, 8 blocks.
    split = {
        "stem": _params(model.stem), "stage0": _params(*b[0:1]), "dsm1": _params(b[1]), "stage1": _params(*b[2:4]),
        "dsm2": _params(b[4]), "stage2": _params(*b[5:9]), "dsm3": _params(b[9]), "stage3": _params(*b[10:14]),
        "dsm4": _params(b[14]), "stage4": _params(*b[15:19]), "dsm5": _params(b[19]), "stage5": _params(*b[20:28]),
        "head": _params(model.head), "classifier": _params(model.classifier),
    }
    assert split == {
        "stem": 928, "stage0": 2_536, "dsm1": 2_688, "stage1": 79_680, "dsm2": 8_416, "stage2": 796_960,
        "dsm3": 21_696, "stage3": 712_576, "dsm4": 84_608, "stage4": 536_064, "dsm5": 200_192,
        "stage5": 7_393_280, "head": 330_240, "classifier": 1_281_000,
    }
    b6 = _meta_model("uninet_b6")
    assert _params(*list(b6.blocks)[-24:]) == 88_399_872
    assert _params(b6.head) == 657_920


def test_b1_official_key_layout():
    model = _meta_model("uninet_b1")
    sd = model.state_dict()
    assert len(sd) == 576
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 49
    assert len(model.blocks) == 28
    kinds = [type(m) for m in model.blocks]
    assert [i for i, k in enumerate(kinds) if k in (LocalDSM, LocalGlobalDSM)] == [1, 4, 9, 14, 19]
    assert kinds[1] is kinds[4] is kinds[9] is LocalDSM and kinds[14] is kinds[19] is LocalGlobalDSM
    assert set(kinds[:14]) - {LocalDSM} == {DWConvBlock} and set(kinds[15:]) - {LocalGlobalDSM} == {AttentionBlock}

    def keys(prefix):
        return {k.removeprefix(prefix) for k in sd if k.startswith(prefix)}

    bn = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    def bn_keys(name):
        return {f"{name}.{s}" for s in bn}
    assert keys("stem.") == {"0.weight"} | bn_keys("1")
    assert keys("head.") == {"0.weight"} | bn_keys("1")
    assert keys("classifier.") == {"weight", "bias"}
    assert keys("blocks.0.") == {  # first block of stage 0: width change, expansion 1 (no b1)
        "residual.1.weight", "residual.1.bias", "b2.0.weight", *bn_keys("b2.1"), "b2.3.fc1.weight", "b2.3.fc1.bias",
        "b2.3.fc2.weight", "b2.3.fc2.bias", "b2.4.weight", "b2.4.bias", *bn_keys("b2.5")}
    assert keys("blocks.2.") == {
        *bn_keys("b1.0"), "b1.1.weight", *bn_keys("b1.2"), "b2.0.weight", *bn_keys("b2.1"), "b2.3.fc1.weight",
        "b2.3.fc1.bias", "b2.3.fc2.weight", "b2.3.fc2.bias", "b2.4.weight", "b2.4.bias", *bn_keys("b2.5")}
    assert keys("blocks.1.") == {"downsample.0.weight", "downsample.0.bias", *bn_keys("downsample.1"),
                                 "downsample.2.weight", "downsample.2.bias", "residual.1.weight", "residual.1.bias"}
    attention_dsm = {"q.0.weight", "q.0.bias", *bn_keys("q.1"), "q.2.weight", "q.2.bias", "q_norm.weight",
                     "q_norm.bias", "kv_norm.weight", "kv_norm.bias", "kv.weight", "kv.bias", "proj.weight",
                     "proj.bias"}
    assert keys("blocks.14.") == attention_dsm | {"residual.0.weight", "residual.0.bias"}  # stride 1
    assert keys("blocks.19.") == attention_dsm | {"residual.1.weight", "residual.1.bias"}  # stride 2
    assert keys("blocks.20.") == {
        "gamma_1", "gamma_2", "norm1.weight", "norm1.bias", "pos_embed.weight", "pos_embed.bias", "attn.qkv.weight",
        "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight",
        "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"}
    float_buffers = {n for n, b in model.named_buffers() if b.is_floating_point()}
    assert float_buffers and all(n.endswith(("running_mean", "running_var")) for n in float_buffers)


@pytest.mark.parametrize("wrapper", [None, "model", "state_dict_ema"])
def test_official_layout_checkpoint_loads(tmp_path, wrapper):
    source = create_model("uninet_b1", seed=5)
    sd = source.state_dict()
    path = tmp_path / "uninet_b1.pth"
    torch.save(sd if wrapper is None else {wrapper: sd, "epoch": 299}, path)
    loaded = create_model("uninet_b1", weights=str(path))
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))
    assert not torch.equal(loaded.classifier.weight, create_model("uninet_b1", seed=6).classifier.weight)


def test_checkpoint_for_another_variant_is_rejected(tmp_path):
    path = tmp_path / "b1.pth"
    torch.save(create_model("uninet_b1").state_dict(), path)
    with pytest.raises(UserError, match="does not fit uninet_b2"):
        create_model("uninet_b2", weights=str(path))


def test_batch_two_equals_two_batch_one_runs():
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(1))
    single, double = create_model("uninet_b0", seed=2), create_model("uninet_b0", batch_size=2, seed=2)
    with torch.no_grad():
        together = double(x)
        apart = torch.cat([single(x[:1]), single(x[1:])])
    assert together.shape == (2, 1000)
    torch.testing.assert_close(together, apart, rtol=0, atol=1e-5 * apart.abs().max().item())


def test_rectangular_input_is_the_transposed_problem():
    # Spatial transpose commutes with every layer once the 3x3 kernels are transposed too (symmetric
    # strides and padding; attention, LN and MLPs do not care about token order; the pool is global).
    # A wrong height/width in any token<->NCHW reshape breaks this.
    tall = create_model("uninet_b0", input_size=(96, 64), seed=4)
    wide = create_model("uninet_b0", input_size=(64, 96))
    sd = {k: v.transpose(-1, -2) if v.dim() == 4 else v for k, v in tall.state_dict().items()}
    wide.load_state_dict(sd)
    x = torch.randn(1, 3, 96, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected, got = tall(x), wide(x.transpose(-1, -2))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5 * expected.abs().max().item())
    assert [m.out_grid for m in tall.modules() if isinstance(m, LocalGlobalDSM)] == [(6, 4), (3, 2)]


def test_fuse_for_export_is_exact_and_leaves_no_standalone_batchnorm():
    model = create_model("uninet_b0", seed=7)
    fused = copy.deepcopy(model)
    fused.fuse_for_export()
    assert len(_standalone_batchnorms(model)) == 10
    assert _standalone_batchnorms(fused) == []
    assert sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules()) == 49 - 10
    assert all(m.b1[1].bias is not None for m in fused.modules() if isinstance(m, DWConvBlock) and m.b1 is not None)
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        reference, got = model(x), fused(x)
    assert (got - reference).abs().max().item() <= 1e-5 * reference.abs().max().item()
    fused.fuse_for_export()  # idempotent
    with torch.no_grad():
        assert torch.equal(fused(x), got)


@torch.no_grad()
def test_attention_and_its_down_sampling_scale_the_scores_once():
    # The softmax scale lives in the qkv weights and in the q LayerNorm's affine; the references scale the scores
    # (scaled_dot_product_attention's default 1/sqrt(32)) from the unscaled modules.
    torch.manual_seed(0)
    attn = Attention(64, 10).eval()
    x = torch.randn(2, 10, 64)
    q, k, v = attn.qkv(x).reshape(2, 10, 3, 2, 32).permute(2, 0, 3, 1, 4)
    expected = attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 10, 64))
    torch.testing.assert_close(attn(x), expected)
    dsm = LocalGlobalDSM(32, 64, 2, (8, 8), (4, 4)).eval()
    nn.init.normal_(dsm.q_norm.weight)
    nn.init.normal_(dsm.q_norm.bias)
    x = torch.randn(2, 32, 8, 8)
    q = dsm.q_norm(nchw_to_tokens(dsm.q(x), 64, 16)).reshape(2, 16, 2, 32).transpose(1, 2)
    k, v = dsm.kv(dsm.kv_norm(nchw_to_tokens(x, 32, 64))).reshape(2, 64, 2, 2, 32).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 16, 64)
    torch.testing.assert_close(dsm(x), tokens_to_nchw(dsm.proj(out), 64, 4, 4) + dsm.residual(x))


def test_unsupported_size_is_a_user_error():
    with pytest.raises(UserError, match=r"uninet_b1 cannot take input 16x224: UniNet needs at least 32 pixels a side"):
        create_model("uninet_b1", input_size=(16, 224))
    assert get_spec("uninet_b3").size_error(32, 500) is None
