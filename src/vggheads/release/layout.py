"""The released dataset's tree (paper section 1.8)::

    ROOT/large/split_000NN/images/<id>.jpg
    ROOT/large/split_000NN/annotations/<id>.npz     bbox (N, 4) xywh, extended_bbox (N, 4) xywh, 3dmm_params (N, 1, 413)
    ROOT/large/split_000NN/files.txt                 one image name per line: images the paper's filters removed

``ROOT`` may also be the ``large`` folder itself (``vggheads export --out DIR`` writes the split
folders directly under ``DIR``). The validation split is ``split_00000``-``split_00001``, the
rest train.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

SPLIT_RE = re.compile(r"^split_(\d{5})$")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
NPZ_KEYS = ("bbox", "extended_bbox", "3dmm_params")


def split_root(root: str | Path) -> Path:
    """The folder holding ``split_000NN``: ``root/large`` when it exists, else ``root``."""
    root = Path(root)
    if not root.is_dir():
        from . import DATASET_ORIGIN, LICENCE

        raise InputError(
            f"release root '{root}' not found: it is {DATASET_ORIGIN}, licence {LICENCE}; "
            "set dataset.release.root to it (nothing is downloaded)"
        )
    return root / "large" if (root / "large").is_dir() else root


def list_splits(root: str | Path) -> list[str]:
    """The split ids (``'00000'``, ...) present under the release root, sorted."""
    base = split_root(root)
    ids = sorted(m.group(1) for e in os.scandir(base) if e.is_dir() and (m := SPLIT_RE.match(e.name)))
    if not ids:
        raise InputError(f"{base}: no split_000NN folders (expected the release layout ROOT/large/split_000NN/...)")
    return ids


def split_dir(root: str | Path, split: str) -> Path:
    return split_root(root) / f"split_{split}"


@dataclass
class SplitFiles:
    """What one split folder holds, by image id (the file stem)."""

    directory: Path
    images: dict[str, str] = field(default_factory=dict)  # id -> file name in images/
    annotations: dict[str, str] = field(default_factory=dict)  # id -> file name in annotations/
    removed: set[str] = field(default_factory=set)  # ids listed in files.txt
    files_txt: bool = False

    def ids(self) -> list[str]:
        """Every id seen (images, annotations or files.txt), sorted: the order of the import."""
        return sorted(set(self.images) | set(self.annotations) | self.removed)


def read_files_txt(path: Path) -> set[str]:
    """The ids named in a ``files.txt`` (one image name or path per line; blank lines ignored)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: unreadable ({exc})") from None
    return {Path(line.strip()).stem for line in text.splitlines() if line.strip()}


def scan_split(root: str | Path, split: str) -> SplitFiles:
    """List one split (``os.scandir``: no stat per file); InputError when the split cannot be used at all."""
    d = split_dir(root, split)
    if not d.is_dir():
        raise InputError(f"{d}: split folder not found under the release root '{root}'")
    images_dir, ann_dir = d / "images", d / "annotations"
    missing = [p.name for p in (images_dir, ann_dir) if not p.is_dir()]
    if missing:
        raise InputError(
            f"{d}: unusable split: no {' and no '.join(missing)} folder (expected images/*.jpg and annotations/*.npz)"
        )
    files = SplitFiles(directory=d)
    for e in os.scandir(images_dir):
        stem, ext = os.path.splitext(e.name)
        if ext.lower() in IMAGE_SUFFIXES:
            if stem in files.images:
                raise InputError(f"{images_dir}: two images for id '{stem}' ({files.images[stem]}, {e.name})")
            files.images[stem] = e.name
    for e in os.scandir(ann_dir):
        stem, ext = os.path.splitext(e.name)
        if ext == ".npz":
            files.annotations[stem] = e.name
    txt = d / "files.txt"
    if txt.is_file():
        files.files_txt = True
        files.removed = read_files_txt(txt)
    if not files.images and not files.annotations:
        raise InputError(f"{d}: unusable split: images/ and annotations/ are both empty")
    return files
