"""Folders of real images: finding, loading (with a warning for unreadable files) and the shipped photos.

Decoding and preprocessing live in :mod:`uninext_deploy.device.imaging`, shared with the device runner.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .device.imaging import load_rgb
from .errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
SHIPPED_IMAGES = Path(__file__).parent / "data" / "images"


def find_images(folder: str | Path | None = None, what: str = "image folder") -> list[Path]:
    """Image files of ``folder`` (default: the shipped photos), sorted; a clear error naming ``what`` (the
    flag it came from) if there are none."""
    folder = Path(folder) if folder is not None else SHIPPED_IMAGES
    if not folder.exists():
        raise UserError(f"{what} {folder} does not exist; pass a folder of jpg/png/bmp/webp images")
    if not folder.is_dir():
        raise UserError(f"{what} {folder} is not a folder; pass a folder of jpg/png/bmp/webp images")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"{what} {folder} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def load_images(paths: list[Path]) -> tuple[list, list[Path]]:
    """Open every path as an RGB PIL image; unreadable files and decompression bombs are skipped with one
    warning naming each and why."""
    images, used, bad = [], [], []
    for path in paths:
        try:
            images.append(load_rgb(path))
            used.append(path)
        except Exception as exc:  # Pillow raises several types for truncated or foreign files
            bad.append(unreadable(path, exc))
    warn_skipped(bad)
    return images, used


def unreadable(path: Path, exc: Exception) -> str:
    """"name (why)" of a file that did not decode, for :func:`warn_skipped`."""
    return f"{path.name} ({(str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]})"


def warn_skipped(bad: list[str]) -> None:
    """One warning naming the skipped files (the first five) and why, if any; attributed to the caller's caller."""
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable image(s): {'; '.join(bad[:5])}"
                      + (" ..." if len(bad) > 5 else ""), stacklevel=3)
