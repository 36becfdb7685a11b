"""Parameters for a freshly built model: official checkpoints through a key mapping, or a seeded init.

The seeded initialisation is deliberately *not* the training-time one. Training inits make many blocks
start as identities (zero-initialised last BatchNorm of a residual branch, layer scale 1e-6, unit BN
statistics), which would let an export bug in those branches pass parity unnoticed. Here every
parameter gets a non-trivial value, and BatchNorm statistics are then measured on the shipped photos
(as a trained network's would have been on its data): random statistics would not normalise anything,
and activations would compound with depth (logits of 1e5 in UniNet-B6). The result exercises every path
of the graph with activations and logits at the scale of a trained network.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from .download import Remote, fetch, parse_url
from .published import lookup
from .spec import ModelSpec

_NORMS = (nn.LayerNorm, nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)


@torch.no_grad()
def seeded_init(model: nn.Module, seed: int) -> None:
    """Fill every parameter and buffer of ``model`` deterministically from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, _NORMS):
            _init_norm(module, gen)
            continue
        for name, param in module.named_parameters(recurse=False):
            if param.dim() >= 2:
                fan_in = param[0].numel()
                nn.init.trunc_normal_(param, std=1.0 / math.sqrt(fan_in), a=-2.0 / math.sqrt(fan_in),
                                      b=2.0 / math.sqrt(fan_in), generator=gen)
            elif "gamma" in name or "scale" in name:
                param.copy_(0.1 + 0.05 * torch.rand(param.shape, generator=gen))
            else:
                param.copy_(0.02 * torch.randn(param.shape, generator=gen))
        for name, buf in module.named_buffers(recurse=False):
            if buf.is_floating_point():
                raise TypeError(f"seeded_init does not know how to fill buffer {name!r} of {module}")
            buf.zero_()


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, samples: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to its batch statistics over ``samples``."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one pass gives exactly the batch statistics
        norm.train()
    try:
        model(samples)
    finally:
        for norm in norms:
            norm.momentum = 0.1
            norm.eval()


def _init_norm(norm: nn.Module, gen: torch.Generator) -> None:
    if norm.weight is not None:
        norm.weight.copy_(1.0 + 0.1 * torch.randn(norm.weight.shape, generator=gen))
        norm.bias.copy_(0.05 * torch.randn(norm.bias.shape, generator=gen))
    if isinstance(norm, nn.modules.batchnorm._BatchNorm):
        norm.running_mean.copy_(0.1 * torch.randn(norm.running_mean.shape, generator=gen))
        norm.running_var.copy_(0.5 + torch.rand(norm.running_var.shape, generator=gen))
        norm.num_batches_tracked.zero_()


_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")


def resolve_weights(spec: ModelSpec, weights: str | Path | None, num_classes: int | None = None) -> str | None:
    """``weights`` as ModelOptions keeps it, fetched when it is remote: a published name of ``spec``'s (``in1k``,
    ``cifar10``, ``MODEL.TAG``) becomes ``MODEL.TAG``; a URL (``#sha256=HEX`` optional) or a path stays as given.
    A URL or published name is downloaded here, once, so an unreachable or broken checkpoint is one line before
    any work, and ``num_classes`` must match a published head."""
    if weights is None:
        return None
    text = str(weights)
    published = lookup(text, spec.name, spec.family)
    if published is not None and num_classes is not None and num_classes != published.num_classes:
        raise UserError(f"--weights {published.name} has a {published.num_classes}-class head, not {num_classes}; "
                        "drop --num-classes")
    name = published.name if published is not None else text
    if published is not None or parse_url(text) is not None:
        checkpoint_file(name)
    return name


def remote_of(weights: str | Path) -> Remote | None:
    """Where ``weights`` downloads from: a published ``MODEL.TAG``'s URL, a URL itself; None for a path."""
    published = lookup(str(weights))
    return Remote(published.url, published.sha256) if published is not None else parse_url(str(weights))


def checkpoint_file(weights: str | Path) -> Path:
    """The local file of ``weights``: the path itself, or for a URL or a published ``MODEL.TAG`` its copy in the
    user cache, downloaded first when absent."""
    remote = remote_of(weights)
    if remote is None:
        return Path(weights)
    return fetch(remote, check=lambda path: _state_dict_of(path, remote.url, "nothing was cached: check that the "
                                                                              "URL is a checkpoint's"))


def read_state_dict(weights: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely (``weights_only=True``) and unwrap common training wrappers. ``weights``: a file,
    an http(s) URL or a published ``MODEL.TAG`` (both fetched once into the user cache)."""
    path = checkpoint_file(weights)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist; pass the path of an official checkpoint, an https URL, "
                        "or a published name (in1k, cifar10, ...)")
    return _state_dict_of(path, f"file {weights}" if path == Path(str(weights)) else str(weights),
                          "expected an official checkpoint")


def _state_dict_of(path: Path, shown: str, fix: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read weights {shown}: not a PyTorch state dict ({first[:120]}); {fix}") from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"weights {shown} holds no state dict of tensors; {fix}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def checkpoint_classes(mapped: dict[str, torch.Tensor], spec: ModelSpec) -> int | None:
    """The number of classes of a (mapped) checkpoint's classifier, or None when it has none."""
    weight = mapped.get(f"{spec.classifier}.weight")
    return int(weight.shape[0]) if weight is not None and weight.dim() == 2 else None


@torch.no_grad()
def load_official_weights(model: nn.Module, spec: ModelSpec, path: str | Path,
                          mapped: dict[str, torch.Tensor] | None = None, ignored: tuple[str, ...] = ()) -> None:
    """Load an official checkpoint into ``model`` through ``spec.key_map``; every key must match, except
    those of the top-level modules ``ignored`` (a feature model's absent classification head)."""
    mapped = spec.key_map(read_state_dict(path)) if mapped is None else mapped
    mapped = {k: v for k, v in mapped.items() if k.split(".")[0] not in ignored}
    ours = model.state_dict()
    missing = [k for k in ours if k not in mapped]
    unexpected = [k for k in mapped if k not in ours]
    misshaped = [f"{k} {tuple(mapped[k].shape)} vs {tuple(ours[k].shape)}"
                 for k in ours if k in mapped and mapped[k].shape != ours[k].shape]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            shown = ", ".join(items[:3]) + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")
            problems.append(f"{len(items)} {label}: {shown}")
    if problems:
        raise UserError(f"weights file {path} does not fit {spec.name}: {'; '.join(problems)}; "
                        f"check that it is an official {spec.family} checkpoint for this variant")
    model.load_state_dict({k: mapped[k].to(ours[k].dtype) for k in ours}, strict=True)
