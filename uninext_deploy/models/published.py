"""Checkpoints the official repositories publish as direct downloads, named as timm names pretrained weights:
``MODEL.TAG`` (``convmlp_s.in1k``, ``convmlp_s.in1k_ft_cifar10``), or the TAG alone for the model being built,
also by its dataset (``imagenet``, ``cifar10``, ``cifar100``, ``flowers102``).

Only ConvMLP publishes files (SHI-Labs/Convolutional-MLPs README and ``model_urls`` in ``src/convmlp.py``, commit
092bf71), without checksums. Its fine-tunes were trained with their dataset's mean and std and crop_pct 1.0
(``configs/classification/finetuned/*.yml``), not the ImageNet preprocessing of the variant's spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

DATA = Path(__file__).resolve().parent.parent / "data"
_CONVMLP = "https://shi-labs.com/projects/convmlp/checkpoints"


@dataclass(frozen=True)
class Published:
    """One published checkpoint: where it is, its head's size and the file of its class names."""

    model: str
    tag: str
    url: str
    num_classes: int
    labels: str  # a file in uninext_deploy/data/
    sha256: str | None = None  # None: the publisher gives none
    preprocessing: dict = field(default_factory=dict)  # ModelSpec fields it was trained with (mean, std, crop_pct)

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    def class_names(self) -> list[str]:
        return (DATA / self.labels).read_text(encoding="utf-8").splitlines()


# tag: (the dataset in ConvMLP's file names, classes, labels file, the preprocessing it was trained with
# beyond the spec's). The fine-tunes' mean/std and crop_pct 1.0 (a resize to the input, no crop) were read from
# configs/classification/finetuned/ for S CIFAR-10, S Flowers-102 and L CIFAR-100; M and the others are taken
# to be the same per dataset, as the configs differ by model only in its name.
_FINE_TUNED = {"crop_pct": 1.0, "interpolation": "bicubic"}
_DATASETS = {
    "in1k": ("imagenet", 1000, "imagenet_labels.txt", {}),
    "in1k_ft_cifar10": ("cifar10", 10, "cifar10_labels.txt",
                        {"mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616), **_FINE_TUNED}),
    "in1k_ft_cifar100": ("cifar100", 100, "cifar100_labels.txt",
                         {"mean": (0.5071, 0.4867, 0.4408), "std": (0.2675, 0.2565, 0.2761), **_FINE_TUNED}),
    "in1k_ft_flowers102": ("flowers102", 102, "flowers102_labels.txt",
                           {"mean": (0.4353, 0.3773, 0.2872), "std": (0.2966, 0.2455, 0.2698), **_FINE_TUNED}),
}
ALIASES = {dataset: tag for tag, (dataset, *_) in _DATASETS.items()}
PUBLISHED = {p.name: p for p in (Published(model, tag, f"{_CONVMLP}/{model}_{dataset}.pth", classes, labels,
                                           preprocessing=pre)
                                 for model in ("convmlp_s", "convmlp_m", "convmlp_l")
                                 for tag, (dataset, classes, labels, pre) in _DATASETS.items())}

# what to say for a family without direct downloads
WHERE = {
    "uninext": "the UniNeXt authors publish no checkpoint (jianlong-yuan/UniNeXt links none); pass one you have "
               "with --weights path/to/file.pth",
    "uninet": "UniNet publishes only UniNet-B1's ImageNet checkpoint, in a Google Drive folder linked from "
              "Sense-X/UniNet's README (https://drive.google.com/drive/folders/14gp-Vtmtd3MNNlrmYtF5FcUi0rm4CaGi): "
              "download it there and pass --weights path/to/file.pth",
    "convmlp": f"ConvMLP publishes convmlp_s/m/l with the tags {', '.join(_DATASETS)} (or {', '.join(ALIASES)}); "
               "pass another checkpoint with --weights path/to/file.pth",
}


def lookup(text: str, model: str | None = None, family: str | None = None) -> Published | None:
    """The published checkpoint ``text`` names (``MODEL.TAG``, or ``TAG`` of ``model``), or None when ``text`` is
    no such name (a path or a URL; an existing file of that name wins). A name of weights nobody publishes
    directly is one UserError saying where to get them (``family``: of ``model``)."""
    key = text.strip().lower().replace("-", "_")
    if "/" in key or "\\" in key or Path(text).is_file():
        return None
    named, _, tag = key.rpartition(".")
    tag = ALIASES.get(tag, tag)
    if tag not in _DATASETS:
        return None
    if named and model and named != model:
        raise UserError(f"--weights {text} are {named}'s, not {model}'s: pass -m {named}, or --weights {tag}")
    named = named or model
    if not named:
        raise UserError(f"--weights {text} names published weights without their model: pass MODEL.{tag}, "
                        f"e.g. convmlp_s.{tag}")
    if f"{named}.{tag}" in PUBLISHED:
        return PUBLISHED[f"{named}.{tag}"]
    family = family or next((f for f in WHERE if named.startswith(f)), "convmlp")  # model names lead with it
    raise UserError(f"no direct download of {tag} weights for {named}: {WHERE[family]}")
