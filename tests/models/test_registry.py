"""Registry behaviour shared by every family: names, sizes, params, determinism, official weights."""

import numpy as np
import pytest
import torch

from uninext_deploy.errors import UserError
from uninext_deploy.models import count_params, create_model, get_spec, list_models


OFFICIAL = list_models(official=True)
TINY = [n for n in list_models() if n not in OFFICIAL]


@pytest.mark.parametrize("name", OFFICIAL)
def test_every_variant_matches_its_official_parameter_count(name):
    spec = get_spec(name)
    assert abs(count_params(name) / spec.official_params - 1) <= 0.005


def test_registry_holds_the_three_families():
    families = {get_spec(n).family for n in list_models()}
    assert families == {"uninext", "convmlp", "uninet"}
    assert list_models("convmlp") == ["convmlp_s", "convmlp_m", "convmlp_l", "test_convmlp"]
    with pytest.raises(UserError, match="unknown family 'convnext'; choose one of uninext, convmlp, uninet"):
        list_models("convnext")


@pytest.mark.parametrize("name", TINY)
def test_tiny_variants_of_each_family_and_mixer_build_fast_at_their_smallest_size(name):
    """timm's test_* models: a small model of each family (test_FAMILY) for tests that need "a model of this
    family", and of each other UniNeXt mixer (test_uninext_MIXER), at 64 px (CSWin's stripes: 112)."""
    spec = get_spec(name)
    assert name == f"test_{spec.family}" or name.removeprefix("test_uninext_") in ("cswin", "pvt", "dwconv", "pool")
    assert spec.native_size == (112 if name.endswith("cswin") else 64)
    assert count_params(name) < (7e6 if name.endswith("cswin") else 2e6)  # CSWin: 64 channels for its two heads
    model = create_model(name, batch_size=2)
    assert model(torch.zeros(model.input_shape)).shape == (2, 1000)


def test_names_are_case_and_dash_insensitive():
    assert get_spec("ConvMLP-S").name == "convmlp_s"


def test_unknown_model_names_the_closest():
    with pytest.raises(UserError, match="did you mean convmlp_s"):
        get_spec("convmlp_x")


def test_unsupported_size_states_the_rule():
    with pytest.raises(UserError, match="at least 32 pixels"):
        create_model("convmlp_s", input_size=16)


def test_real_model_builds_and_runs_at_its_static_shape():
    model = create_model("convmlp_s", batch_size=2, input_size=(160, 192))
    assert model.input_shape == (2, 3, 160, 192)
    assert model(torch.zeros(model.input_shape)).shape == (2, 1000)
    assert not model.training


def test_seeded_init_is_deterministic_and_seed_dependent():
    x = torch.randn(1, 3, 64, 64)
    a = create_model("convmlp_s", input_size=64, seed=0)(x)
    b = create_model("convmlp_s", input_size=64, seed=0)(x)
    c = create_model("convmlp_s", input_size=64, seed=1)(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_seeded_logits_are_spread_not_degenerate():
    # Parity and top-k agreement are only meaningful when the logits are not all alike: on the shipped
    # photos (the parity inputs) the seeded model's classes differ. Noise inputs are not used here: they
    # often share one class, so a test on them would depend on the random draw.
    from uninext_deploy.device.imaging import preprocess
    from uninext_deploy.images import find_images, load_images

    pre = create_model("convmlp_s", input_size=64).spec.preprocessing(64, 64)
    photos = torch.from_numpy(np.stack([preprocess(im, pre) for im in load_images(find_images())[0]]))
    logits = create_model("convmlp_s", input_size=64)(photos)
    assert logits.std(dim=1).min() > 0.1
    assert len(set(logits.argmax(dim=1).tolist())) >= 3
