"""UniNeXt: sizes against the official measurements, state-dict layout, static shapes, mixer references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from uninext_deploy.errors import UserError
from uninext_deploy.models import count_attention_macs, count_macs, count_params, create_model, get_spec, list_models
from uninext_deploy.models.uninext import StripeAttention, WindowAttention

ONE_PER_MIXER = ["uninext_t", "uninext_t_cswin", "uninext_t_pvt", "uninext_t_dwconv", "uninext_t_pool"]


def _meta_model(name: str, height: int = 224, width: int = 224) -> nn.Module:
    with torch.device("meta"):
        return get_spec(name).build(1, height, width).eval()


def test_registers_the_nine_variants_with_the_default_first():
    assert list_models("uninext", official=True) == [
        "uninext_t", "uninext_s", "uninext_b", "uninext_t_cswin", "uninext_s_cswin", "uninext_b_cswin",
        "uninext_t_pvt", "uninext_t_dwconv", "uninext_t_pool"]


@pytest.mark.parametrize("name", list_models("uninext", official=True))
def test_params_and_macs_match_official(name):
    spec = get_spec(name)
    assert count_params(name) == pytest.approx(spec.official_params, rel=0.005)
    assert count_macs(name) / 1e9 == pytest.approx(spec.official_gmacs, rel=0.03)


def test_parameter_split_per_module_matches_official():
    def split(name: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for key, param in _meta_model(name).named_parameters():
            top = key.split(".")[0]
            group = "stem+merge0" if top.startswith(("stem", "norm_act", "merge0")) else top
            counts[group] = counts.get(group, 0) + param.numel()
        return counts

    assert split("uninext_t") == {
        "stem+merge0": 38_208, "stage1": 107_264, "cpe1": 1_280, "merge1": 74_112, "stage2": 411_136,
        "cpe2": 2_560, "merge2": 295_680, "stage3": 14_478_336, "cpe3": 46_080, "merge3": 1_181_184,
        "stage4": 6_363_136, "cpe4": 10_240, "norm": 1_024, "head": 513_000}
    small, base = split("uninext_s"), split("uninext_b")
    assert (small["stage3"], small["stage4"], small["head"]) == (32_334_336, 14_263_296, 769_000)
    assert (base["stage3"], base["stage4"], base["head"]) == (57_268_224, 25_309_184, 1_025_000)


@pytest.mark.parametrize("name, tensors, expected_keys", [
    ("uninext_t", 536, ["stage1.0.q_bias", "stage1.0.v_bias", "stage1.0.qkv.weight",
                        "stage1.0.attns.0.lepe.weight", "stage3.17.mlp.norm_act.0.weight"]),
    ("uninext_t_cswin", 556, ["stage1.0.qkv.bias", "stage3.0.attns.1.get_v.weight",
                              "stage4.1.attns.0.get_v.bias"]),
    ("uninext_t_pvt", 648, ["stage1.0.attn.sr.weight", "stage3.0.attn.norm.bias", "stage4.0.attn.kv.weight",
                            "stage4.0.attn.proj.bias"]),
    ("uninext_t_dwconv", 512, ["stage2.1.attns.0.dwconv.weight", "stage2.1.attns.0.lepe.bias"]),
    ("uninext_t_pool", 464, ["stage4.1.attns.0.lepe.weight", "stage4.1.proj.weight"]),
])
def test_state_dict_has_the_official_layout(name, tensors, expected_keys):
    model = _meta_model(name)
    keys = model.state_dict().keys()
    assert len(keys) == tensors
    assert set(expected_keys) <= keys
    common = ["stem1.weight", "norm_act3.0.bias", "merge0.conv.weight", "merge3.norm.weight", "cpe4.1.bias",
              "stage2.0.mlp.dwconv.weight", "stage2.0.mlp.fc2.bias", "norm.weight", "head.bias"]
    assert set(common) <= keys
    assert list(model.buffers()) == []


def test_window_mixer_has_no_k_bias_and_pvt_has_no_block_projection():
    window, pvt = _meta_model("uninext_t"), _meta_model("uninext_t_pvt")
    assert window.stage1[0].qkv.bias is None
    assert window.stage1[0].attns[0].lepe.weight.shape == (64, 1, 3, 3)
    assert not any(k.startswith("stage1.0.proj.") for k in pvt.state_dict())
    assert pvt.stage4[0].attn.sr_ratio == 1 and not hasattr(pvt.stage4[0].attn, "sr")


def test_key_map_keeps_unknown_keys_for_the_loader_to_report():
    state = {"head.bias": torch.zeros(1000), "not.a.key": torch.zeros(1)}
    assert set(get_spec("uninext_t").key_map(state)) == {"head.bias", "not.a.key"}


@pytest.mark.parametrize("name", [n if n in ONE_PER_MIXER else pytest.param(n, marks=pytest.mark.slow)
                                  for n in list_models("uninext", official=True)])
def test_batch_of_two_equals_two_batches_of_one(name):
    model = create_model(name, batch_size=2)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        both = model(x)
        one_by_one = torch.cat([model(x[:1]), model(x[1:])])
    assert both.shape == (2, 1000)
    assert both.std() > 0.1  # weights give well-spread logits, so the comparison means something
    torch.testing.assert_close(both, one_by_one, rtol=1e-4, atol=1e-5)
    assert (both[0] - both[1]).abs().max() > 1e-2


def test_official_layout_checkpoint_loads_and_reproduces_outputs(tmp_path):
    model = create_model("uninext_t", seed=3)
    official = dict(model.state_dict())  # the key mapping is the identity, so this is also its inverse
    assert get_spec("uninext_t").key_map(official).keys() == official.keys()
    path = tmp_path / "uninext_t_official.pth"
    torch.save(official, path)
    loaded = create_model("uninext_t", weights=str(path))
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name, size, rule", [
    ("uninext_t", 230, "multiples of 32"),
    ("uninext_b", (224, 200), "multiples of 32"),
    ("uninext_t_pool", 16, "multiples of 32"),
    ("uninext_t_cswin", 256, "multiples of 112"),
    ("uninext_s_cswin", (224, 320), "multiples of 112"),
])
def test_unsupported_sizes_raise_the_rule(name, size, rule):
    with pytest.raises(UserError, match=rule):
        create_model(name, input_size=size)


@pytest.mark.parametrize("name, size", [
    ("uninext_t", (256, 256)), ("uninext_t", (224, 320)), ("uninext_t_pvt", (288, 192)),
    ("uninext_t_pool", (160, 160)), ("uninext_t_cswin", (336, 336)), ("uninext_t_cswin", (112, 224)),
])
def test_supported_sizes_build_and_run(name, size):
    assert get_spec(name).size_error(*size) is None
    assert count_macs(name, input_size=size) > 0


def _prescaled_q(qkv: Tensor, dim: int) -> Tensor:
    """Packed q/k/v as the blocks hand it to their attention: q scaled by 1/sqrt(32) (folded into the projection)."""
    return torch.cat((qkv[..., :dim] / math.sqrt(32), qkv[..., dim:]), dim=-1)


def _reference_window_attention(attn: WindowAttention, qkv: Tensor, height: int, width: int,
                                mask_padding: bool = False) -> Tensor:
    """Loop over 7x7 windows of the zero-padded grid; optionally mask the padded keys out."""
    batch, dim, ws, heads = qkv.shape[0], attn.dim, 7, attn.dim // 32
    padded_h, padded_w = math.ceil(height / ws) * ws, math.ceil(width / ws) * ws
    grid = F.pad(qkv.reshape(batch, height, width, 3 * dim),
                 (0, 0, 0, padded_w - width, 0, padded_h - height))
    real = torch.zeros(padded_h, padded_w, dtype=torch.bool)
    real[:height, :width] = True
    out = torch.zeros(batch, padded_h, padded_w, dim)
    for top in range(0, padded_h, ws):
        for left in range(0, padded_w, ws):
            window = grid[:, top:top + ws, left:left + ws].reshape(batch, ws * ws, 3, heads, 32)
            q, k, v = window.permute(2, 0, 3, 1, 4)
            logits = q @ k.transpose(-2, -1) / math.sqrt(32)
            if mask_padding:
                keep = real[top:top + ws, left:left + ws].reshape(ws * ws)
                logits = logits.masked_fill(~keep, float("-inf"))
            result = torch.softmax(logits, dim=-1) @ v
            out[:, top:top + ws, left:left + ws] = result.transpose(1, 2).reshape(batch, ws, ws, dim)
    v_image = qkv[..., 2 * dim:].transpose(1, 2).reshape(batch, dim, height, width)
    lepe = F.conv2d(v_image, attn.lepe.weight, attn.lepe.bias, padding=1, groups=dim)
    return out[:, :height, :width].reshape(batch, -1, dim) + lepe.flatten(2).transpose(1, 2)


def test_window_attention_pads_without_mask_like_the_official_code():
    torch.manual_seed(0)
    height, width = 8, 10  # padded to 14 x 14: 2 x 2 windows, three of them partly padding
    attn = WindowAttention(64, height, width)
    assert (attn.pad_bottom, attn.pad_right) == (6, 4)
    qkv = torch.randn(2, height * width, 3 * 64)
    with torch.no_grad():
        ours = attn(_prescaled_q(qkv, 64))
        torch.testing.assert_close(ours, _reference_window_attention(attn, qkv, height, width))
        masked = _reference_window_attention(attn, qkv, height, width, mask_padding=True)
    assert (ours - masked).abs().max() > 1e-2  # the padded zero keys do change the result


def test_padded_model_runs_at_256():
    model = create_model("uninext_t", input_size=256)
    pads = [(s[0].attns[0].pad_bottom, s[0].attns[0].pad_right) for s in
            (model.stage1, model.stage2, model.stage3, model.stage4)]
    assert pads == [(6, 6), (3, 3), (5, 5), (6, 6)]  # grids 64, 32, 16, 8
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


@pytest.mark.parametrize("stripe_h, stripe_w", [(4, 2), (4, 1), (2, 6), (1, 6), (4, 6)],
                         ids=["columns", "one-pixel columns", "rows", "one-pixel rows", "global"])
def test_stripe_attention_matches_a_per_stripe_reference(stripe_h, stripe_w):
    torch.manual_seed(0)
    height, width = 4, 6
    attn = StripeAttention(64, 2, height, width, stripe_h, stripe_w)
    qkv = torch.randn(2, height * width, 3 * 64)
    grid = qkv.reshape(2, height, width, 3, 2, 32)
    expected = torch.zeros(2, height, width, 64)
    for top in range(0, height, stripe_h):
        for left in range(0, width, stripe_w):
            rows, cols = slice(top, top + stripe_h), slice(left, left + stripe_w)
            window = grid[:, rows, cols].reshape(2, stripe_h * stripe_w, 3, 2, 32)
            q, k, v = window.permute(2, 0, 3, 1, 4)
            v_stripe = v.transpose(-2, -1).reshape(2, 64, stripe_h, stripe_w)  # zero padding at stripe borders
            lepe = F.conv2d(v_stripe, attn.get_v.weight, attn.get_v.bias, padding=1, groups=64)
            result = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(32), dim=-1) @ v
            result = result + lepe.reshape(2, 2, 32, stripe_h * stripe_w).transpose(-2, -1)
            expected[:, rows, cols] = result.transpose(1, 2).reshape(2, stripe_h, stripe_w, 64)
    with torch.no_grad():
        torch.testing.assert_close(attn(_prescaled_q(qkv, 64)), expected.reshape(2, -1, 64))


class _MaxRank(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.max_rank = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for value in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(value, torch.Tensor):
                self.max_rank = max(self.max_rank, value.dim())
        return out


@pytest.mark.parametrize("name, size", [("uninext_t", 256), ("uninext_t_cswin", 224), ("uninext_t_pvt", 224)])
def test_no_tensor_exceeds_rank_7(name, size):
    # TensorRT allows at most 8 dimensions; windows and stripes are partitioned with rank-7 reshapes.
    model, ranks = _meta_model(name, size, size), _MaxRank()
    with ranks, torch.no_grad():
        model(torch.empty(2, 3, size, size, device="meta"))
    assert ranks.max_rank <= 7


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", ONE_PER_MIXER)
def test_trace_at_batch_1_reads_no_sizes_and_is_right_at_batch_2(name):
    # The official CSWin code bakes the traced batch size into its window merge.
    model = create_model(name)
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224), check_trace=False)
        assert "aten::size" not in {node.kind() for node in traced.inlined_graph.nodes()}
        x = torch.randn(2, 3, 224, 224)
        torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-5)



def test_attention_macs_count_the_window_and_stripe_products():
    # q @ k^T and attn @ v: tokens x keys per token x channels, twice; stage grids 56/28/14/7 at 224, depths 2/2/18/2
    def stages(keys):
        return sum(depth * (56 // 2 ** i) ** 2 * keys[i] * 64 * 2 ** i * 2 for i, depth in enumerate((2, 2, 18, 2)))

    assert count_attention_macs("uninext_t") == stages((49, 49, 49, 49))
    assert count_attention_macs("uninext_t_cswin") == stages((56, 56, 98, 49))  # stripes 56x1, 28x2, 14x7; global
