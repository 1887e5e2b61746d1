"""The one image reader: RGB uint8 pixels, or an error naming the file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image as RGB uint8 ``(H, W, 3)`` (PIL; EXIF orientation is not applied, so pixels
    match the width and height in the file's header, which the manifests record).

    :class:`~vggheads.errors.InputError` naming the file for anything missing or unreadable. Once
    ultralytics is imported it patches ``PIL.Image.open`` so that an unidentified file tries to
    install ``pi-heif`` and fails with an ImportError offline: that is an unreadable image too.
    """
    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: image not found")
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise InputError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding its pixels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as exc:  # noqa: BLE001 - as load_rgb
        raise InputError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None


def iter_images(rows: list[dict], images_dir: Path, batch: int, stats: dict):
    """Yield lists of (row, RGB image) of up to ``batch`` readable images; unreadable ones are
    counted in ``stats["unreadable"]`` and their sample ids listed in ``stats["unreadable_ids"]``."""
    chunk = []
    for row in rows:
        try:
            image = load_rgb(Path(images_dir) / row["image"])
        except InputError as exc:
            log.warning("dropped: %s", exc)
            stats["unreadable"] += 1
            stats["unreadable_ids"].append(row["sample_id"])
            continue
        chunk.append((row, image))
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
