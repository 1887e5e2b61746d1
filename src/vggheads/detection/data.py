"""The detector's labelled subset: procedural render truth or a COCO json, as a YOLO dataset.

The paper hand-labelled 10,000 generated images in Labelbox (exported as COCO, split 80/20) with
full-head boxes: the smallest box over every visible head pixel, hair included. The procedural
renderer's truth boxes are exactly that, so on procedural renders a share of the images plays the
labelled subset (chosen by a hash of the sample id, so it does not depend on shard order) and the
rest measures the detector honestly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

CLASS_NAME = "head"


@dataclass
class LabelledImage:
    """One image with its head boxes."""

    image_id: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) xyxy pixels


def in_labelled_subset(sample_id: str, fraction: float, seed: int = 0) -> bool:
    """Whether ``sample_id`` belongs to the labelled subset (a stable hash below ``fraction``)."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64 < fraction


def read_procedural(
    render_table: Path, heads_table: Path, images_dir: Path, min_box_size: float = 2.0
) -> list[LabelledImage]:
    """The images of one render shard with their exact head boxes (schema ``render_heads``)."""
    from ..schemas import read_table

    images = read_table(render_table, "render").to_pylist()
    heads = read_table(heads_table, "render_heads", columns=["sample_id", "box"]).to_pylist()
    boxes: dict[str, list] = {}
    for h in heads:
        b = np.asarray(h["box"], dtype=np.float64)
        if b[2] - b[0] >= min_box_size and b[3] - b[1] >= min_box_size:
            boxes.setdefault(h["sample_id"], []).append(b)
    out = []
    for row in images:
        path = Path(images_dir) / row["image"]
        out.append(
            LabelledImage(
                row["sample_id"],
                path,
                int(row["width"]),
                int(row["height"]),
                np.asarray(boxes.get(row["sample_id"], []), dtype=np.float64).reshape(-1, 4),
            )
        )
    return out


def procedural_subset(
    shards: list[tuple[Path, Path, Path]], fraction: float, seed: int = 0, min_box_size: float = 2.0
) -> tuple[list[LabelledImage], list[LabelledImage]]:
    """(labelled, held out) over shards given as (render table, render_heads table, images dir)."""
    labelled, held_out = [], []
    for render_table, heads_table, images_dir in shards:
        for item in read_procedural(Path(render_table), Path(heads_table), Path(images_dir), min_box_size):
            (labelled if in_labelled_subset(item.image_id, fraction, seed) else held_out).append(item)
    return labelled, held_out


def render_procedural(
    head_model: Path,
    n_images: int,
    width: int,
    height: int,
    out_dir: Path,
    seed: int = 0,
    max_persons: int = 4,
    render_cfg: dict | None = None,
    min_box_size: float = 2.0,
    min_confidence: float = 0.3,
) -> list[LabelledImage]:
    """``n_images`` extra procedural scenes for the detector alone: random multi-person skeletons
    (:func:`vggheads.poses.procedural.sample_scene`, 1..``max_persons`` people) rendered by the
    procedural renderer with its exact head boxes. Its own seed stream: the dataset's images stay
    unseen by the detector, so its recall on them is a held-out measure.
    """
    from PIL import Image
    from tqdm import tqdm

    from ..headmodel import load_head_model
    from ..poses.procedural import sample_scene
    from ..render.procedural import ProceduralRenderer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    renderer = ProceduralRenderer(load_head_model(head_model), render_cfg or {}, min_confidence=min_confidence)
    rng = np.random.default_rng([int(seed), 0xDE7EC7])
    items = []
    for i in tqdm(range(int(n_images)), desc="render detector subset", unit="image"):
        persons = sample_scene(int(rng.integers(1, max_persons + 1)), width, height, rng)
        scene = renderer.render(
            [(k, p.keypoints) for k, p in enumerate(persons)], width, height, seed=int(rng.integers(0, 2**31 - 1))
        )
        path = out_dir / f"extra_{i:06d}.png"
        Image.fromarray(scene.image).save(path)
        boxes = np.array([h.box for h in scene.heads], dtype=np.float64).reshape(-1, 4)
        keep = ((boxes[:, 2] - boxes[:, 0]) >= min_box_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_box_size)
        items.append(LabelledImage(f"extra_{i:06d}", path, width, height, boxes[keep]))
    return items


def write_procedural_shard(
    head_model: Path,
    shard: str,
    n_images: int,
    width: int,
    height: int,
    out_dir: Path,
    seed: int = 0,
    max_persons: int = 4,
    render_cfg: dict | None = None,
) -> tuple[Path, Path, Path]:
    """A shard laid out as the render stage writes it, from random skeletons (tests, benchmarks):
    ``out_dir/{shard}.parquet`` (render), ``{shard}.heads.parquet`` (render_heads), ``{shard}/``.
    Returns (render table, heads table, images dir)."""
    from PIL import Image

    from ..headmodel import load_head_model
    from ..poses.procedural import sample_scene
    from ..render.procedural import ProceduralRenderer
    from ..render.truth_rows import head_rows
    from ..schemas import from_rows, write_table

    out_dir = Path(out_dir)
    images_dir = out_dir / shard
    images_dir.mkdir(parents=True, exist_ok=True)
    renderer = ProceduralRenderer(load_head_model(head_model), render_cfg or {})
    rng = np.random.default_rng([int(seed), int(shard), 0x5EED])
    images, heads = [], []
    for i in range(int(n_images)):
        sid = f"{shard}_{i:06d}"
        persons = sample_scene(int(rng.integers(1, max_persons + 1)), width, height, rng)
        s = int(rng.integers(0, 2**31 - 1))
        scene = renderer.render([(k, p.keypoints) for k, p in enumerate(persons)], width, height, seed=s)
        Image.fromarray(scene.image).save(images_dir / f"{sid}.png")
        images.append(
            {
                "sample_id": sid,
                "image": f"{sid}.png",
                "width": width,
                "height": height,
                "backend": "procedural",
                "seed": s,
                "prompt": "",
                "negative_prompt": "",
                "base_model": "procedural",
                "condition_model": "coco17-keypoints",
            }
        )
        heads.extend(head_rows(sid, scene.heads))
    table, heads_table = out_dir / f"{shard}.parquet", out_dir / f"{shard}.heads.parquet"
    write_table(from_rows("render", images), table, "render")
    write_table(from_rows("render_heads", heads), heads_table, "render_heads")
    return table, heads_table, images_dir


def read_coco(json_path: Path, images_dir: Path, category: str | None = None) -> list[LabelledImage]:
    """A COCO json of head boxes (Labelbox's COCO export): ``images`` (id, file_name, optional width,
    height), ``annotations`` (image_id, bbox xywh), ``categories``. ``category``: keep only that
    category name (None = every annotation is a head)."""
    json_path, images_dir = Path(json_path), Path(images_dir)
    if not json_path.exists():
        raise InputError(f"COCO json '{json_path}' not found (detector.labelled.coco_json)")
    try:
        doc = json.loads(json_path.read_text())
        images = doc["images"]
        annotations = doc.get("annotations", [])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{json_path}: not a COCO json with 'images' and 'annotations' ({exc})") from None
    keep_cat = None
    if category is not None:
        ids = [c["id"] for c in doc.get("categories", []) if c.get("name") == category]
        if not ids:
            names = [c.get("name") for c in doc.get("categories", [])]
            raise InputError(f"{json_path}: no category named '{category}' (found {names})")
        keep_cat = set(ids)
    boxes: dict = {}
    for ann in annotations:
        if keep_cat is not None and ann.get("category_id") not in keep_cat:
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w > 0 and h > 0:
            boxes.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
    out = []
    for im in images:
        path = images_dir / im["file_name"]
        width, height = im.get("width"), im.get("height")
        if not width or not height:
            from ..core.images import image_size

            if not path.exists():
                raise InputError(f"{json_path}: image '{im['file_name']}' not found under {images_dir}")
            width, height = image_size(path)
        out.append(
            LabelledImage(
                str(im["id"]),
                path,
                int(width),
                int(height),
                np.asarray(boxes.get(im["id"], []), dtype=np.float64).reshape(-1, 4),
            )
        )
    return out


def coco_subset(
    json_path: Path, images_dir: Path, val_fraction: float = 0.2, seed: int = 0, category: str | None = None
) -> tuple[list[LabelledImage], list[LabelledImage]]:
    """(train, val) from a COCO json, split by a stable hash of the image id (paper: 80/20)."""
    items = read_coco(json_path, images_dir, category)
    train = [i for i in items if not in_labelled_subset(i.image_id, val_fraction, seed)]
    val = [i for i in items if in_labelled_subset(i.image_id, val_fraction, seed)]
    return train, val


def _link(src: Path, dst: Path) -> None:
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copyfile(src, dst)


def yolo_label_lines(item: LabelledImage) -> list[str]:
    """YOLO txt lines ``0 cx cy w h`` (normalised, clipped to the image) for the boxes of ``item``."""
    lines = []
    W, H = float(item.width), float(item.height)
    for x1, y1, x2, y2 in item.boxes:
        x1, x2 = np.clip([x1, x2], 0, W)
        y1, y2 = np.clip([y1, y2], 0, H)
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            continue
        lines.append(f"0 {(x1 + x2) / 2 / W:.6f} {(y1 + y2) / 2 / H:.6f} {(x2 - x1) / W:.6f} {(y2 - y1) / H:.6f}")
    return lines


def write_yolo_dataset(train: list[LabelledImage], val: list[LabelledImage], root: Path) -> Path:
    """Write ``root/{images,labels}/{train,val}`` (images linked, not copied) and ``root/data.yaml``.

    An empty ``val`` reuses ``train`` for validation. Returns the data.yaml path.
    """
    import yaml

    if not train:
        raise InputError(
            "the detector's labelled subset is empty: no image to train on "
            "(raise detector.labelled.extra_images or shard_fraction, or check the COCO json)"
        )
    root = Path(root)
    for split, items in (("train", train), ("val", val or train)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i, item in enumerate(items):
            if not item.path.exists():
                raise InputError(f"labelled image '{item.path}' not found")
            stem = f"{i:06d}_{item.image_id}".replace(os.sep, "_")
            _link(item.path, root / "images" / split / f"{stem}{item.path.suffix.lower()}")
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(yolo_label_lines(item)) + "\n")
    data = {"path": str(root.resolve()), "train": "images/train", "val": "images/val", "names": {0: CLASS_NAME}}
    out = root / "data.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out
