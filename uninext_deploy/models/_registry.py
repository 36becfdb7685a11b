"""The model registry: every variant is a :class:`ModelSpec`, i.e. data plus a builder.

Family files (``convmlp.py``, ``uninext.py``, ``uninet.py``) call :func:`register` for each variant;
:func:`create_model` builds one for a fixed (batch, height, width), then loads official weights through
the variant's key mapping or applies the seeded initialisation.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .features import LOGITS, out_indices as check_out_indices, strip_head
from .published import lookup
from .spec import ModelSpec
from .weights import (calibrate_batchnorm, checkpoint_classes, load_official_weights, read_state_dict,
                      resolve_weights, seeded_init)

BN_PHOTOS = 4  # shipped photos whose statistics the seeded BatchNorms take

_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def list_models(family: str | None = None, *, official: bool = False) -> list[str]:
    """Registered model names, optionally of one family (an unknown family is one UserError naming the
    families), in registration order; ``official``: only variants with official numbers (no test_*)."""
    _load_families()
    if family is not None and _normalise(family) not in FAMILIES:
        raise UserError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    return [n for n, s in _REGISTRY.items() if (family is None or s.family == _normalise(family))
            and not (official and s.official_params is None)]


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name`` (case and ``-``/``_`` insensitive), or a UserError naming close matches."""
    _load_families()
    key = _normalise(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    # test_* models are suggested only to who asks for a test model; a low cutoff offered test_uninet and
    # uninet_b5 for resnet50
    names = [n for n in _REGISTRY if key.startswith("test") or not n.startswith("test_")]
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.7)
    hint = (f"did you mean {', '.join(close)}?" if close else
            f"this tool builds the {', '.join(FAMILIES)} families; `uninext-deploy models` lists every variant")
    raise UserError(f"unknown model {name!r}; {hint}")


def resolve_size(spec: ModelSpec, input_size: int | tuple[int, int] | None) -> tuple[int, int]:
    if input_size is None:
        return spec.native_size, spec.native_size
    h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    problem = spec.size_error(int(h), int(w))
    if problem:
        raise UserError(f"{spec.name} cannot take input {h}x{w}: {problem}")
    return int(h), int(w)


def create_model(
    name: str,
    *,
    input_size: int | tuple[int, int] | None = None,
    batch_size: int = 1,
    weights: str | None = None,
    seed: int = 0,
    features_only: bool = False,
    out_indices=None,
    num_classes: int | None = None,
) -> nn.Module:
    """Build ``name`` in static-shape form for (batch_size, 3, H, W), in eval mode.

    With ``weights`` (an official state dict file) the parameters come from it through the variant's
    key mapping; without, they come from :func:`seeded_init` with ``seed``.
    ``features_only``: the model returns the feature maps of the stages ``out_indices`` picks (timm's
    convention; default all, see :func:`features.out_indices`), as a tuple, and has no classification head.
    ``num_classes``: the classifier's size (default: the checkpoint's, else the spec's 1000).

    The model carries ``spec``, ``input_shape``, ``output_names``, ``features`` (the Feature of each
    output; empty for a classifier) and ``num_classes`` (None for a feature model).
    """
    from ..device.imaging import preprocess
    from ..images import find_images, load_images

    spec = get_spec(name)
    weights = resolve_weights(spec, weights, num_classes)  # a published name as MODEL.TAG, a URL fetched
    published = lookup(weights) if weights is not None else None
    if published is not None:  # a fine-tune's own mean, std and crop: its manifest and parity then use them
        spec = dataclasses.replace(spec, **published.preprocessing)
    from ..limits import within

    within("--batch", batch_size)
    h, w = resolve_size(spec, input_size)
    within("--num-classes", num_classes)
    if features_only and num_classes is not None:
        raise UserError("--num-classes sizes the classifier, which a feature model has none of; drop one of "
                        "--num-classes and --features")
    if not features_only and out_indices is not None:
        raise UserError("out_indices picks feature stages; pass features_only=True with it")
    indices = check_out_indices(spec.features, spec.name, out_indices) if features_only else None
    state = spec.key_map(read_state_dict(weights)) if weights is not None else None
    if not features_only:
        found = checkpoint_classes(state, spec) if state is not None else None
        if found is not None and num_classes is not None and found != num_classes:
            raise UserError(f"weights file {weights} has a {found}-class head, not {num_classes}; drop "
                            f"--num-classes or pass --num-classes {found}")
        num_classes = num_classes or found or spec.num_classes
    with torch.device("meta"):
        model = spec.build(batch_size, h, w, num_classes=num_classes or spec.num_classes)
    if indices is not None:
        strip_head(model, spec.head, indices)
    model = model.to_empty(device="cpu")
    if state is not None:
        load_official_weights(model, spec, weights, state, ignored=spec.head if indices is not None else ())
    else:
        seeded_init(model, seed)
        photos, _ = load_images(find_images()[:BN_PHOTOS])
        samples = torch.from_numpy(np.stack([preprocess(p, spec.preprocessing(h, w)) for p in photos]))
        calibrate_batchnorm(model.eval(), samples)
    model.eval()
    model.spec = spec
    model.input_shape = (batch_size, 3, h, w)
    model.features = tuple(spec.features[i] for i in indices) if indices is not None else ()
    model.output_names = [f.name for f in model.features] if indices is not None else [LOGITS]
    model.num_classes = None if indices is not None else num_classes
    return model


FAMILIES = ("uninext", "convmlp", "uninet")


def _load_families() -> None:
    # Registering is a side effect of importing the family modules, as in timm; done lazily so that
    # importing the registry stays cheap.
    for family in FAMILIES:
        importlib.import_module(f"{__package__}.{family}")
