"""The ``ultralytics`` backend of extract_poses: YOLO-pose on the real images of the sampled rows.

Images are found by the sample's URL through img2dataset's output (``<key>.json`` sidecars with a
``url`` field next to ``<key>.jpg``, in a folder or in webdataset ``.tar`` shards, e.g. the shards
``download_images`` writes), or by a file named ``<sample_id>.<ext>`` in a folder. As in the paper, poses are scaled to a canvas whose short
side is ``imgsz`` (SmallestMaxSize 1024).
"""

from __future__ import annotations

import glob
import io
import json
import tarfile
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError, MissingWeightsError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")


def load_model(weights: str):
    path = Path(weights)
    if not path.is_file():
        raise MissingWeightsError(
            "YOLO-pose weights (poses.ultralytics.weights)",
            path,
            "Download a pose model on a machine with internet (e.g. https://github.com/ultralytics/assets/releases "
            "yolo11x-pose.pt) and put it there, or set poses.ultralytics.weights to its path; nothing is downloaded at run time.",
        )
    from ..offline import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    model = YOLO(str(path))
    if getattr(model, "task", None) != "pose":
        raise InputError(f"{path}: a '{model.task}' model, expected a pose model (e.g. yolo11x-pose.pt)")
    return model


def _index_folder(folder: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for sidecar in folder.rglob("*.json"):
        try:
            url = json.loads(sidecar.read_text()).get("url")
        except (json.JSONDecodeError, OSError, AttributeError):
            continue
        for ext in IMAGE_EXTS:
            img = sidecar.with_suffix(ext)
            if url and img.exists():
                index[f"url:{url}"] = img
                break
    for img in folder.rglob("*"):
        if img.suffix.lower() in IMAGE_EXTS:
            index.setdefault(f"id:{img.stem}", img)
    return index


def find_images(source: str, wanted: list[tuple[str, str]]) -> Iterator[tuple[str, np.ndarray | None]]:
    """Yield (sample_id, RGB image or None when missing/corrupt) for each (sample_id, url) in ``wanted``."""
    from PIL import Image

    def decode(data_or_path):
        try:
            with Image.open(data_or_path) as im:
                return np.asarray(im.convert("RGB"))
        except Exception:
            return None

    src = Path(source)
    if src.is_dir():
        index = _index_folder(src)
        for sample_id, url in wanted:
            path = index.get(f"url:{url}") or index.get(f"id:{sample_id}")
            yield sample_id, decode(path) if path else None
        return
    tars = sorted(glob.glob(source))
    if not tars:
        raise InputError(f"poses.ultralytics.images: '{source}' is neither a folder nor a glob matching .tar shards")
    by_url = {url: sid for sid, url in wanted}
    found: dict[str, np.ndarray | None] = {}
    for tar_path in tars:
        try:
            with tarfile.open(tar_path) as tar:
                members = {m.name: m for m in tar.getmembers() if m.isfile()}
                for name, member in members.items():
                    if not name.endswith(".json"):
                        continue
                    try:
                        url = json.loads(tar.extractfile(member).read()).get("url")
                    except (json.JSONDecodeError, AttributeError):
                        continue
                    if url not in by_url:
                        continue
                    stem = name[:-5]
                    img_member = next((members[stem + e] for e in IMAGE_EXTS if stem + e in members), None)
                    found[by_url[url]] = decode(io.BytesIO(tar.extractfile(img_member).read())) if img_member else None
        except tarfile.TarError as exc:
            raise InputError(f"{tar_path}: not a readable tar shard ({exc})") from None
    for sample_id, _ in wanted:
        yield sample_id, found.get(sample_id)


def _device() -> str:
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def detect(
    model, image: np.ndarray, conf: float, imgsz: int, max_det: int = 300
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Run YOLO-pose; return keypoints (N,17,3) and boxes (N,4) on the canvas, and the canvas (width, height).

    Persons are the detections scoring at least ``conf`` (at most ``max_det``, best first)."""
    h, w = image.shape[:2]
    scale = imgsz / min(h, w)
    result = model.predict(image[..., ::-1], conf=conf, imgsz=imgsz, max_det=max_det, verbose=False, device=_device())[
        0
    ]
    if result.keypoints is None or len(result.boxes) == 0:
        return np.zeros((0, 17, 3), np.float32), np.zeros((0, 4), np.float32), round(w * scale), round(h * scale)
    kpts = result.keypoints.data.cpu().numpy().astype(np.float32)
    if kpts.shape[-1] == 2:  # models without visibility
        kpts = np.concatenate([kpts, np.ones(kpts.shape[:-1] + (1,), np.float32)], axis=-1)
    kpts[..., :2] *= scale
    boxes = result.boxes.xyxy.cpu().numpy().astype(np.float32) * scale
    return kpts, boxes, round(w * scale), round(h * scale)
