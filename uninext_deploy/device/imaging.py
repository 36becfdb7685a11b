"""Image in, model input out: decoding and preprocessing, with numpy and Pillow only.

The host toolchain imports this module and bundles ship it as ``imaging.py``, so the preprocessing a
device applies is the very code the golden outputs were made with.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def load_rgb(path: str | Path) -> Image.Image:
    """Open any common image (grayscale, palette, RGBA, CMYK, 16-bit, WebP...) as 8-bit RGB, upright as a
    viewer shows it (EXIF orientation applied). A decompression bomb (over Pillow's MAX_IMAGE_PIXELS, 89
    megapixels) is a ValueError, not just a warning; an unreadable file an OSError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as opened:
                opened.load()
                return _rgb(ImageOps.exif_transpose(opened))
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ValueError(str(exc).split(", could be")[0] + " (a decompression bomb?)") from None


def _rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB of any mode; transparency over white, 16-bit scaled to the 8-bit range."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        scale = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / scale * 255.0, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        im = Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        background = Image.new("RGB", im.size, (255, 255, 255))
        rgba = im.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")


def preprocess(image: Image.Image, pre: dict) -> np.ndarray:
    """Resize, centre-crop and normalise one RGB image to a float32 (3, H, W) array per ``pre``.

    ``pre`` is the preprocessing record of a model spec or manifest: ``crop`` [H, W],
    ``resize_short_side`` (None with ``resize_exact``), ``interpolation``, ``mean``, ``std``.
    """
    crop_h, crop_w = pre["crop"]
    resample = _RESAMPLE[pre.get("interpolation", "bicubic")]
    if pre.get("resize_exact"):
        image = image.resize((crop_w, crop_h), resample)
    else:
        w, h = image.size
        scale = max(pre["resize_short_side"] / min(w, h), crop_h / h, crop_w / w)
        image = image.resize((max(crop_w, round(w * scale)), max(crop_h, round(h * scale))), resample)
        left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
        image = image.crop((left, top, left + crop_w, top + crop_h))
    arr = np.asarray(image, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(pre["mean"], np.float32)) / np.asarray(pre["std"], np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))
