"""Feature maps for detection and segmentation necks, timm's ``features_only`` convention.

Every model is a :class:`Backbone`: ``stage_outputs(x)`` yields the output of each feature stage in the model's
own layout, ``feature_map`` turns one into NCHW, ``forward_head`` makes the logits from the last one. Built
with ``out_indices``, the model returns the chosen stages' maps (a tuple, in stage order), stops after the
last one it needs, and has no classification head: its modules (``ModelSpec.head``) are deleted and their
checkpoint keys ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..errors import UserError

LOGITS = "logits"  # the output name of a classifier; feature outputs are named after their stage


@dataclass(frozen=True)
class Feature:
    """One feature stage: its output name, channels and nominal stride (input side / map side)."""

    name: str
    channels: int
    stride: int

    def as_dict(self) -> dict:
        return {"name": self.name, "channels": self.channels, "stride": self.stride}


class Backbone(nn.Module):
    out_indices: tuple[int, ...] | None = None  # None: the classifier

    def stage_outputs(self, x: Tensor):
        raise NotImplementedError

    def feature_map(self, index: int, x: Tensor) -> Tensor:
        return x

    def forward_head(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor):
        if self.out_indices is None:
            *_, last = self.stage_outputs(x)
            return self.forward_head(last)
        maps = []
        for index, y in enumerate(self.stage_outputs(x)):
            if index in self.out_indices:
                maps.append(self.feature_map(index, y))
            if index == self.out_indices[-1]:
                break
        return tuple(maps)


def strip_head(model: Backbone, head: tuple[str, ...], indices: tuple[int, ...]) -> None:
    """Make ``model`` a feature model for ``indices``: delete its classification head's modules ``head``."""
    for module in head:
        delattr(model, module)
    model.out_indices = indices


def out_indices(features: tuple[Feature, ...], model: str, chosen) -> tuple[int, ...]:
    """timm's ``out_indices`` checked against the model's stages: None or "all" -> every stage; otherwise
    indices (0-based, negative from the end) or output names ("stage2"), each at most once, given in any
    order and returned sorted. Anything else is one UserError naming the choices."""
    names = [f.name for f in features]
    choices = f"{model} has stages 0-{len(features) - 1} ({', '.join(names)})"
    if chosen is None or (isinstance(chosen, str) and chosen.strip().lower() == "all"):
        return tuple(range(len(features)))
    items = [p for p in chosen.replace(" ", ",").split(",") if p] if isinstance(chosen, str) else list(chosen)
    if not items:
        raise UserError(f"--features needs at least one stage; {choices}, or 'all'")
    picked = []
    for item in items:
        text = str(item).strip().lower()
        if text in names:
            index = names.index(text)
        else:
            try:
                index = int(text)
            except ValueError:
                raise UserError(f"--features: no stage {item!r}; {choices}") from None
            if not -len(features) <= index < len(features):
                raise UserError(f"--features: stage index {index} is out of range; {choices}")
            index %= len(features)
        if index in picked:
            raise UserError(f"--features: stage {names[index]} ({index}) is given twice; name each stage once")
        picked.append(index)
    return tuple(sorted(picked))
