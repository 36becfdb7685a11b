"""Calibration data for INT8: real images only, never random noise.

Either a folder of the user's images (``--calib DIR``), sampled with a seed, or the photos the project
ships; too few images are stretched to the requested count with deterministic augmentations
(random-resized crops, flips) so that every sample is a real photo seen at a different scale and position.

A set holds what each sample is (a photo's path, its crop and flip), never the samples themselves: they are
decoded and preprocessed a batch at a time as the calibration reads them, so its memory does not grow with
``--calib-size`` (UniNeXt-T at 384 px with 128 samples held as one array: 226 MB of float32 on top of the
flat calibration; a folder's photos decoded at once: 36 MB per 12-megapixel photo).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import ImageOps

from ..console import progress
from ..device.imaging import load_rgb, preprocess
from ..errors import UserError
from ..images import find_images, unreadable, warn_skipped
from ..limits import within

DEFAULT_CALIB_SIZE = 32


@dataclass(frozen=True)
class View:
    """One calibration sample: a photo, the box of it to crop (left, top, right, bottom) and whether mirrored."""

    path: Path
    crop: tuple[int, int, int, int] | None = None
    mirror: bool = False


class CalibrationSet:
    """Samples that are decoded and preprocessed per ``pre`` when read; ``distinct``: how many distinct images
    they come from (the rest are augmented views)."""

    def __init__(self, pre: dict, views: list[View], distinct: int):
        self.pre, self.views, self.distinct = pre, views, distinct

    def __len__(self) -> int:
        return len(self.views)

    def sample(self, i: int) -> np.ndarray:
        view = self.views[i]
        image = load_rgb(view.path)
        image = image.crop(view.crop) if view.crop else image
        return preprocess(ImageOps.mirror(image) if view.mirror else image, self.pre)

    def batches(self, batch: int) -> Batches:
        return Batches(self, batch)

    def array(self) -> np.ndarray:
        """Every sample at once, float32 (N, 3, H, W): for tools that take an array (benchmarks, tests)."""
        return np.stack([self.sample(i) for i in range(len(self))])


class Batches:
    """A set's samples in runs of ``batch``, the last padded with the first samples (static batch graphs);
    iterable again and again (NNCF reads its dataset more than once), one batch in memory at a time."""

    def __init__(self, samples: CalibrationSet, batch: int):
        self.samples, self.batch = samples, batch

    def __len__(self) -> int:
        return -(-len(self.samples) // self.batch)

    def __iter__(self) -> Iterator[np.ndarray]:
        n = len(self.samples)
        for start in range(0, n, self.batch):
            yield np.stack([self.samples.sample((start + k) % n) for k in range(self.batch)])


def calibration_set(pre: dict, folder: str | Path | None = None, size: int = DEFAULT_CALIB_SIZE,
                    seed: int = 0) -> CalibrationSet:
    """``size`` samples from ``folder`` or the shipped photos.

    A folder with at least ``size`` readable images gives a seeded choice of them (read in a seeded order
    until ``size`` open; the rest are never decoded); fewer (and the shipped photos) give every image as it
    is, then augmented views of them up to ``size``, with a warning for a user's folder (its ranges come from
    few scenes).
    """
    within("--calib-size", size)
    rng = np.random.default_rng(seed)
    paths = find_images(folder, "calibration folder")
    order = rng.permutation(len(paths)) if folder is not None and len(paths) >= size else range(len(paths))
    sizes = _readable(paths, order, size if folder is not None else len(paths))
    if not sizes:
        raise UserError(f"calibration folder {folder} has no readable image; pass a folder of jpg/png/bmp/webp photos")
    readable = sorted(sizes)
    if folder is not None and len(readable) >= size:
        return CalibrationSet(pre, [View(path) for path in readable], size)
    if folder is not None:
        warnings.warn(f"calibration folder {folder} has {len(readable)} usable image(s) for --calib-size {size}: "
                      f"calibrating on augmented views of them (random crops, flips); add images of the scenes "
                      "the device will see for better INT8 ranges")
    views = [View(readable[i]) for i in range(min(size, len(readable)))]
    for i in range(len(readable), size):  # first the images as they are; then augmented views of them
        path = readable[i % len(readable)]
        views.append(View(path, *_augment(sizes[path], rng)))
    return CalibrationSet(pre, views, min(size, len(readable)))


def _readable(paths: list[Path], order, wanted: int) -> dict[Path, tuple[int, int]]:
    """The upright sizes of the first ``wanted`` paths in ``order`` that decode; the others are skipped with
    one warning naming each and why (each photo decoded once here, then again when its sample is read)."""
    sizes, bad = {}, []
    with progress.step(f"reading the calibration photos ({len(paths)} found)", total=wanted) as reading:
        for index in order:
            if len(sizes) == wanted:
                break
            try:
                sizes[paths[index]] = load_rgb(paths[index]).size
                reading.advance()
            except Exception as exc:  # Pillow raises several types for truncated or foreign files
                bad.append(unreadable(paths[index], exc))
    warn_skipped(bad)
    return sizes


def _augment(size: tuple[int, int], rng: np.random.Generator) -> tuple[tuple[int, int, int, int], bool]:
    """A random-resized crop of an image of ``size`` (35-100 % of the area, aspect 3:4-4:3), and whether it is
    mirrored (half of the time)."""
    w, h = size
    area = w * h * rng.uniform(0.35, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = min(w, int(round(np.sqrt(area * aspect)))), min(h, int(round(np.sqrt(area / aspect))))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return (left, top, left + cw, top + ch), bool(rng.random() < 0.5)
