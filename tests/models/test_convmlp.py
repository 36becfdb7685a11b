"""ConvMLP against the facts measured on the official code (Convolutional-MLPs@092bf71)."""

import pytest
import torch

from uninext_deploy.errors import UserError
from uninext_deploy.models import count_macs, create_model, get_spec, list_models


@pytest.mark.parametrize("name", list_models("convmlp", official=True))
def test_macs_within_3_percent_of_official(name):
    assert abs(count_macs(name) / 1e9 / get_spec(name).official_gmacs - 1) <= 0.03


def test_per_module_parameter_split_of_s():
    model = create_model("convmlp_s", input_size=32)
    split = {name: sum(p.numel() for p in module.parameters()) for name, module in model.named_children()}
    assert split["tokenizer"] == 28_768
    assert split["conv_stages"] == 402_816
    assert [sum(p.numel() for p in s.parameters()) for s in model.stages] == [562_688, 3_298_816, 4_215_808]
    assert split["norm"] == 1_024 and split["head"] == 513_000


def test_state_dict_has_the_official_layout():
    keys = create_model("convmlp_s", input_size=32).state_dict().keys()
    assert len(keys) == 184
    for key in ("tokenizer.block.0.weight", "tokenizer.block.7.running_var", "conv_stages.conv_blocks.1.6.weight",
                "conv_stages.downsample.bias", "stages.0.blocks.1.connect.weight",
                "stages.1.downsample_mlp.downsample.weight", "stages.2.blocks.1.channel_mlp2.fc2.bias", "head.weight"):
        assert key in keys
    assert "stages.2.downsample_mlp.downsample.weight" not in keys


def test_connect_conv_replaces_x_and_conv_stage_relu_is_inside_the_branch():
    # Parameter counts cannot reveal either mistake, so check the maths of one block.
    model = create_model("convmlp_s", input_size=32)
    block = model.stages[0].blocks[0]
    x = torch.randn(1, 4, 4, 128)
    y = x + block.channel_mlp1(block.norm1(x))
    y = block.connect(block.connect_norm(y).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    y = y + block.channel_mlp2(block.norm2(y))
    torch.testing.assert_close(block(x), y)
    stage = model.conv_stages
    z = torch.randn(1, 64, 8, 8)
    expected = z + stage.conv_blocks[0](z)
    expected = expected + stage.conv_blocks[1](expected)
    torch.testing.assert_close(stage(z), stage.downsample(expected))
    assert isinstance(stage.conv_blocks[0][-1], torch.nn.ReLU)


@pytest.mark.parametrize("wrap", ["plain", "model", "state_dict_ema", "module_prefix"])
def test_official_checkpoint_loads_through_the_key_mapping(tmp_path, wrap):
    source = create_model("convmlp_s", input_size=64, seed=7)
    sd = source.state_dict()
    obj = {"plain": sd, "model": {"model": sd, "epoch": 300}, "state_dict_ema": {"state_dict_ema": sd},
           "module_prefix": {f"module.{k}": v for k, v in sd.items()}}[wrap]
    torch.save(obj, tmp_path / "convmlp_s_imagenet.pth")
    loaded = create_model("convmlp_s", input_size=64, weights=str(tmp_path / "convmlp_s_imagenet.pth"))
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(loaded(x), source(x))
    assert not torch.equal(loaded(x), create_model("convmlp_s", input_size=64, seed=0)(x))


def test_foreign_checkpoint_names_the_mismatched_keys(tmp_path):
    torch.save(create_model("convmlp_m", input_size=32).state_dict(), tmp_path / "m.pth")
    with pytest.raises(UserError, match=r"does not fit convmlp_s: 78 unexpected: .*; 48 mis-shaped: "):
        create_model("convmlp_s", weights=str(tmp_path / "m.pth"))


def test_extra_and_missing_keys_are_reported(tmp_path):
    sd = create_model("convmlp_s", input_size=32).state_dict()
    sd.pop("head.bias")
    sd["head.extra"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"1 missing: head\.bias; 1 unexpected: head\.extra"):
        create_model("convmlp_s", weights=str(tmp_path / "bad.pth"))


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b""])
def test_corrupt_weights_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a PyTorch state dict") as info:
        create_model("convmlp_s", weights=str(path))
    assert "\n" not in str(info.value)


def test_missing_weights_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        create_model("convmlp_s", weights=str(tmp_path / "nope.pth"))
