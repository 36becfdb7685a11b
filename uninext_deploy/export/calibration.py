"""Calibration data for INT8: real images only, never random noise.

Either a folder of the user's images (``--calib DIR``), sampled with a seed, or the photos the project
ships; too few images are stretched to the requested count with deterministic augmentations
(random-resized crops, flips) so that every sample is a real photo seen at a different scale and position.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..console import progress
from ..device.imaging import preprocess
from ..errors import UserError
from ..images import find_images, load_images
from ..limits import within

DEFAULT_CALIB_SIZE = 32


def calibration_set(pre: dict, folder: str | Path | None = None, size: int = DEFAULT_CALIB_SIZE,
                    seed: int = 0) -> tuple[np.ndarray, int]:
    """``size`` preprocessed samples, float32 (size, 3, H, W), from ``folder`` or the shipped photos, and how
    many distinct images they came from.

    A folder with at least ``size`` images gives a seeded choice of them; fewer (and the shipped photos) give
    every image as it is, then augmented views of them up to ``size``, with a warning for a user's folder
    (its ranges come from few scenes).
    """
    within("--calib-size", size)
    rng = np.random.default_rng(seed)
    images, _ = load_images(find_images(folder))
    if not images:
        raise UserError(f"calibration folder {folder} has no readable image; pass a folder of jpg/png/bmp/webp photos")
    if folder is not None and len(images) >= size:
        chosen = sorted(rng.choice(len(images), size=size, replace=False))
        return np.stack([preprocess(images[i], pre) for i in chosen]), size
    if folder is not None:
        warnings.warn(f"calibration folder {folder} has {len(images)} usable image(s) for --calib-size {size}: "
                      f"calibrating on augmented views of them (random crops, flips); add images of the scenes "
                      "the device will see for better INT8 ranges")
    samples = []
    with progress.step(f"preparing {size} calibration samples from {len(images)} photos", total=size) as preparing:
        for i in range(size):
            image = images[i % len(images)]
            if i >= len(images):  # first pass: the images as they are; then augmented views of them
                image = _augment(image, rng)
            samples.append(preprocess(image, pre))
            preparing.advance()
    return np.stack(samples), min(size, len(images))


def _augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random-resized crop (35-100 % of the area, aspect 3:4-4:3), mirrored half of the time."""
    w, h = image.size
    area = w * h * rng.uniform(0.35, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = min(w, int(round(np.sqrt(area * aspect)))), min(h, int(round(np.sqrt(area / aspect))))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = image.crop((left, top, left + cw, top + ch))
    return ImageOps.mirror(crop) if rng.random() < 0.5 else crop
