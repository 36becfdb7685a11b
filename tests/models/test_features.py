"""Feature maps (timm's features_only / out_indices) and custom heads, registry-driven over every variant."""

import pytest
import torch

from uninext_deploy.errors import UserError
from uninext_deploy.models import count_params, create_model, get_spec, list_models
from uninext_deploy.models.stats import _meta_model

OFFICIAL = list_models(official=True)
TINY = [n for n in list_models() if n not in OFFICIAL]


@pytest.mark.parametrize("name", OFFICIAL)
def test_declared_feature_info_matches_every_variant(name):
    """Channels and strides are data on the spec; the maps the model returns agree with them (meta tensors:
    every variant at its native size in seconds)."""
    spec = get_spec(name)
    model, shape = _meta_model(name, None, 1, tuple(range(len(spec.features))))
    with torch.no_grad():
        maps = model(torch.empty(shape, device="meta"))
    assert len(maps) == len(spec.features) >= 4
    for fmap, feature in zip(maps, spec.features):
        assert fmap.shape[1] == feature.channels
        assert -(-shape[2] // feature.stride) == fmap.shape[2] and -(-shape[3] // feature.stride) == fmap.shape[3]
    assert [f.stride for f in spec.features] == sorted(f.stride for f in spec.features)
    assert spec.features[-1].stride == 32 and not any(hasattr(model, m) for m in spec.head)


@pytest.mark.parametrize("name", TINY)
def test_feature_maps_are_the_classifiers_stage_outputs(name):
    """The same seeded weights; the stages of a feature model are exactly the classifier's, up to where
    the chosen stages end, and the head and its weights are gone."""
    spec = get_spec(name)
    classifier = create_model(name, batch_size=2)
    features = create_model(name, batch_size=2, features_only=True)
    assert features.output_names == [f.name for f in spec.features] and classifier.output_names == ["logits"]
    head_keys = [k for k in classifier.state_dict() if k.split(".")[0] in spec.head]
    assert head_keys and set(features.state_dict()) == set(classifier.state_dict()) - set(head_keys)
    classifier_state = classifier.state_dict()
    assert all(torch.equal(v, classifier_state[k]) for k, v in features.state_dict().items())
    x = torch.randn(2, 3, spec.native_size, spec.native_size)
    with torch.no_grad():
        maps = features(x)
        later = create_model(name, batch_size=2, features_only=True, out_indices=(1, -1))(x)
        classifier.out_indices = tuple(range(len(spec.features)))  # the classifier's own stages, returned
        torch.testing.assert_close(classifier(x), maps, rtol=0, atol=0)
    assert len(maps) == len(spec.features) and all(m.shape[0] == 2 for m in maps)
    torch.testing.assert_close(later[0], maps[1], rtol=0, atol=0)
    torch.testing.assert_close(later[1], maps[-1], rtol=0, atol=0)


def test_out_indices_by_name_and_index_sorted_once():
    model = create_model("test_uninext", features_only=True, out_indices="stage4, 1")
    assert model.out_indices == (1, 3) and model.output_names == ["stage2", "stage4"]
    assert [f.channels for f in model.features] == [64, 256]


@pytest.mark.parametrize("indices, message", [
    ((4,), "stage index 4 is out of range; test_uninext has stages 0-3 (stage1, stage2, stage3, stage4)"),
    ((-5,), "out of range"),
    ((1, 1), "stage stage2 (1) is given twice"),
    ((1, "stage2"), "given twice"),
    ((), "needs at least one stage"),
    ("", "needs at least one stage"),
    ("stage9", "no stage 'stage9'"),
])
def test_bad_out_indices_are_one_line_errors(indices, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        create_model("test_uninext", features_only=True, out_indices=indices)
    assert "\n" not in str(caught.value)


def test_custom_head_size_builds_and_runs():
    model = create_model("test_uninet", num_classes=7)
    assert model(torch.zeros(model.input_shape)).shape == (1, 7)
    with pytest.raises(UserError, match="--num-classes must be from 1 to 1000000"):
        create_model("test_uninet", num_classes=0)
    with pytest.raises(UserError, match="feature model has none"):
        create_model("test_uninet", num_classes=7, features_only=True)


def test_checkpoint_head_size_is_taken_from_the_checkpoint(tmp_path):
    """A fine-tuned checkpoint with a 10-class head: the model takes 10 classes, loads every key; a feature
    model from the same file ignores just the head's keys; a clashing --num-classes is one line."""
    tuned = create_model("convmlp_s", input_size=64, num_classes=10, seed=3)
    path = tmp_path / "convmlp_s_flowers.pth"
    torch.save({"model": tuned.state_dict()}, path)
    loaded = create_model("convmlp_s", input_size=64, weights=str(path))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tuned(x))
        assert loaded(x).shape == (1, 10)
        maps = create_model("convmlp_s", input_size=64, weights=str(path), features_only=True)(x)
    tuned.out_indices = (0, 1, 2, 3)  # the same modules, returning the stage maps
    with torch.no_grad():
        torch.testing.assert_close(maps, tuned(x))
    with pytest.raises(UserError, match="has a 10-class head, not 5; drop --num-classes or pass --num-classes 10"):
        create_model("convmlp_s", input_size=64, weights=str(path), num_classes=5)


def test_a_feature_checkpoint_still_needs_every_backbone_key(tmp_path):
    state = create_model("test_convmlp").state_dict()
    del state["stages.0.blocks.0.norm1.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(UserError, match="1 missing: stages.0.blocks.0.norm1.weight"):
        create_model("test_convmlp", weights=str(tmp_path / "partial.pth"), features_only=True)


def test_feature_models_drop_only_the_head_parameters():
    for name in TINY:
        spec = get_spec(name)
        full = count_params(name)
        features = create_model(name, features_only=True)
        head = sum(p.numel() for m in spec.head if hasattr(create_model(name), m)
                   for p in getattr(create_model(name), m).parameters())
        assert sum(p.numel() for p in features.parameters()) == full - head > 0
