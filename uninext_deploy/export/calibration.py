"""Calibration data for INT8: real images only, never random noise.

Either a folder of the user's images (``--calib DIR``), sampled with a seed, or the photos the project
ships, stretched to the requested count with deterministic augmentations (random-resized crops, flips)
so that every sample is a real photo seen at a different scale and position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError
from ..device.imaging import preprocess
from ..images import find_images, load_images

DEFAULT_CALIB_SIZE = 32


def calibration_set(pre: dict, folder: str | Path | None = None, size: int = DEFAULT_CALIB_SIZE,
                    seed: int = 0) -> np.ndarray:
    """``size`` preprocessed samples, float32 (size, 3, H, W), from ``folder`` or the shipped photos."""
    if size < 1:
        raise UserError(f"--calib-size must be at least 1, got {size}")
    rng = np.random.default_rng(seed)
    if folder is not None:
        images, _ = load_images(find_images(folder))
        if len(images) < size:
            raise UserError(f"calibration folder {folder} has {len(images)} usable image(s) but --calib-size is "
                            f"{size}; add images or lower --calib-size")
        chosen = sorted(rng.choice(len(images), size=size, replace=False))
        return np.stack([preprocess(images[i], pre) for i in chosen])
    photos, _ = load_images(find_images())
    samples = []
    for i in range(size):
        photo = photos[i % len(photos)]
        if i >= len(photos):  # first pass: the photos as they are; then augmented views of them
            photo = _augment(photo, rng)
        samples.append(preprocess(photo, pre))
    return np.stack(samples)


def _augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random-resized crop (35-100 % of the area, aspect 3:4-4:3), mirrored half of the time."""
    w, h = image.size
    area = w * h * rng.uniform(0.35, 1.0)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw, ch = min(w, int(round(np.sqrt(area * aspect)))), min(h, int(round(np.sqrt(area / aspect))))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = image.crop((left, top, left + cw, top + ch))
    return ImageOps.mirror(crop) if rng.random() < 0.5 else crop
