"""``HeadDataset``: the parquet manifests (``images.parquet`` + ``heads.parquet``) as training batches.

Each item is letterboxed the paper's way (long side -> ``imgsz``, centred, pad value 127); in
training mode a random similarity (rotation about the image centre, scale, translation; never a
flip) and an HSV jitter follow, and with ``crop`` the item is a ``crop x crop`` window of that
canvas placed around a random head: the heads keep the size they have at inference while a step
costs (crop / imgsz)^2 of a whole image (a 128 px window of a 256 px canvas: a quarter), so the
same CPU time trains on about four times as many heads. Every geometric step is a 2D similarity ``p -> A p + b`` applied
exactly to the boxes, the landmarks and the 413-value vectors (the rotation turns the head's R
about the camera axis; see :func:`vggheads.core.similarity.transform_params`).

Items and batches use ultralytics' detection keys (``img`` uint8 CHW RGB, ``cls``, ``bboxes``
normalised xywh, ``batch_idx``, ``im_file``, ``ori_shape``, ``ratio_pad``) plus ``flame_params``
``(n, 413)`` and ``landmarks`` ``(n, 68, 3)`` in input pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from ..core.images import load_rgb
from ..errors import InputError
from ..core.param_layout import N_PARAMS
from ..core.similarity import transform_boxes, transform_params, transform_points
from .config import PAD_VALUE

MIN_BOX_SIDE = 2.0  # px: a head whose box shrinks below this after augmentation is dropped
MIN_BOX_AREA_KEPT = 0.1  # fraction of a box that must stay inside the image after augmentation


def letterbox_transform(width: int, height: int, size: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The map original -> letterboxed pixels: ``(A (2,2), b (2,), (new_w, new_h))``.

    Continuous pixel coordinates (pixel c spans [c, c+1)): ``x' = x * new_w / w + left``.
    """
    r = size / max(width, height)
    new_w, new_h = max(1, round(width * r)), max(1, round(height * r))
    left, top = (size - new_w) // 2, (size - new_h) // 2
    A = np.diag([new_w / width, new_h / height])
    return A, np.array([left, top], dtype=np.float64), (new_w, new_h)


def letterbox(image: np.ndarray, size: int, pad_value: int = PAD_VALUE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resize the long side to ``size`` (area averaging when shrinking), pad centred with ``pad_value``.

    Returns ``(canvas (size, size, 3), A, b)`` with ``A``, ``b`` the pixel map of :func:`letterbox_transform`.
    """
    h, w = image.shape[:2]
    A, b, (new_w, new_h) = letterbox_transform(w, h, size)
    interp = cv2.INTER_AREA if new_w < w else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interp) if (new_w, new_h) != (w, h) else image
    canvas = np.full((size, size, 3), pad_value, dtype=np.uint8)
    left, top = int(b[0]), int(b[1])
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, A, b


def warp_similarity(
    image: np.ndarray, A: np.ndarray, b: np.ndarray, size: int, pad_value: int = PAD_VALUE
) -> np.ndarray:
    """Warp by the continuous-coordinate map ``p -> A p + b`` (converted to OpenCV's pixel-index convention)."""
    offset = b + A @ np.array([0.5, 0.5]) - 0.5
    M = np.concatenate([A, offset[:, None]], axis=1)
    return cv2.warpAffine(
        image, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(pad_value,) * 3
    )


def random_similarity(
    rng: np.random.Generator, size: int, degrees: float, scale: float, translate: float
) -> tuple[np.ndarray, np.ndarray]:
    """A random rotation (+/- degrees, about the image centre), scale (1 +/- scale) and shift (+/- translate * size)."""
    theta = math.radians(rng.uniform(-degrees, degrees))
    k = rng.uniform(1 - scale, 1 + scale)
    A = k * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    c = np.array([size / 2, size / 2])
    shift = rng.uniform(-translate, translate, 2) * size
    return A, c - A @ c + shift


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, hgain: float, sgain: float, vgain: float) -> np.ndarray:
    """Random hue/saturation/value gains on an RGB uint8 image (ultralytics' RandomHSV on RGB)."""
    if not (hgain or sgain or vgain):
        return image
    r = rng.uniform(-1, 1, 3) * [hgain, sgain, vgain] + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(0, 256, dtype=np.int16)
    lut_hue = ((x * r[0]) % 180).astype(np.uint8)
    lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def load_manifest(
    images_path: str | Path, heads_path: str | Path, split: str | None, max_images: int | None = None
) -> list[dict]:
    """One dict per image of ``split`` (None = all): ``image_id``, ``im_file`` (absolute), ``width``,
    ``height``, ``boxes`` (n, 4), ``flame_params`` (n, 413), ``landmarks`` (n, 68, 3). Images keep
    the manifest's order; ``max_images`` keeps the first ones."""
    from ..schemas import read_table

    images = read_table(images_path, "images").to_pylist()
    heads = read_table(heads_path, "heads", columns=["image_id", "head", "box", "flame_params", "landmarks"])
    root = Path(images_path).resolve().parent
    by_image: dict[str, list[int]] = {}
    for i, image_id in enumerate(heads.column("image_id").to_pylist()):
        by_image.setdefault(image_id, []).append(i)
    boxes = np.asarray(heads.column("box").to_pylist(), dtype=np.float32).reshape(-1, 4)
    params = np.asarray(heads.column("flame_params").to_pylist(), dtype=np.float32).reshape(len(boxes), -1)
    landmarks = np.asarray(heads.column("landmarks").to_pylist(), dtype=np.float32).reshape(len(boxes), 68, 3)
    items = []
    for row in images:
        if split is not None and row["split"] != split:
            continue
        idx = by_image.get(row["image_id"], [])
        items.append(
            {
                "image_id": row["image_id"],
                "im_file": str(root / row["path"]),
                "width": row["width"],
                "height": row["height"],
                "boxes": boxes[idx],
                "flame_params": params[idx],
                "landmarks": landmarks[idx],
            }
        )
        if max_images is not None and len(items) >= max_images:
            break
    return items


class HeadDataset(torch.utils.data.Dataset):
    """Images and head labels of one manifest split, letterboxed (and augmented when ``augment``).

    ``hyp``: an object with ultralytics' augmentation names ``degrees``, ``scale``, ``translate``,
    ``hsv_h``, ``hsv_s``, ``hsv_v`` (the trainer's args). ``labels``/``im_files`` are what the
    ultralytics trainer and validator read from a dataset.

    Example::

        ds = HeadDataset("data/manifest/images.parquet", "data/manifest/heads.parquet", "val", imgsz=160)
        batch = HeadDataset.collate_fn([ds[0], ds[1]])
    """

    def __init__(
        self,
        images_path: str | Path,
        heads_path: str | Path,
        split: str | None,
        imgsz: int,
        augment: bool = False,
        hyp=None,
        max_images: int | None = None,
        seed: int = 0,
        crop: int | None = None,
    ):
        self.items = load_manifest(images_path, heads_path, split, max_images)
        self.split, self.imgsz, self.augment, self.hyp = split, int(imgsz), bool(augment), hyp
        if crop is not None and not (int(crop) >= 32 and int(crop) % 32 == 0):
            raise ValueError(f"crop must be a multiple of 32 (at least 32), got {crop}")
        # a window as large as the canvas: whole images
        self.crop = int(crop) if crop and int(crop) < self.imgsz else None
        self.rect = False
        self.im_files = [it["im_file"] for it in self.items]
        self.labels = [
            {"cls": np.zeros((len(it["boxes"]), 1), np.float32), "bboxes": it["boxes"], "im_file": it["im_file"]}
            for it in self.items
        ]
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        """The trainer calls this at the start of each epoch: augmentations derive from (seed, epoch, index)."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        # one stream per (seed, epoch, image): different augmentations every epoch, the same ones
        # whatever ran before (a resumed run draws what an uninterrupted one drew)
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> dict:
        it = self.items[index]
        image = load_rgb(it["im_file"])
        h0, w0 = image.shape[:2]
        if (w0, h0) != (it["width"], it["height"]):
            raise InputError(f"{it['im_file']}: image is {w0}x{h0}, the manifest says {it['width']}x{it['height']}")
        canvas, A, b = letterbox(image, self.imgsz)
        boxes, params, landmarks = it["boxes"], it["flame_params"], it["landmarks"]
        size = self.imgsz
        if self.augment and self.hyp is not None:
            rng = self._rng(index)
            hyp = self.hyp
            A2, b2 = random_similarity(rng, self.imgsz, float(hyp.degrees), float(hyp.scale), float(hyp.translate))
            if self.crop:
                size = self.crop
                b2 = b2 - self._crop_origin(rng, transform_boxes(boxes, A2 @ A, A2 @ b + b2))
            canvas = warp_similarity(canvas, A2, b2, size)
            A, b = A2 @ A, A2 @ b + b2
            canvas = hsv_jitter(canvas, rng, float(hyp.hsv_h), float(hyp.hsv_s), float(hyp.hsv_v))
        boxes_t = transform_boxes(boxes, A, b)
        params_t = transform_params(params, A, b)
        landmarks_t = transform_points(landmarks, A, b)
        keep = np.ones(len(boxes_t), bool)
        if len(boxes_t):
            clipped = boxes_t.clip(0, size)
            wh = clipped[:, 2:] - clipped[:, :2]
            full = (boxes_t[:, 2:] - boxes_t[:, :2]).prod(1)
            keep = (wh > MIN_BOX_SIDE).all(1) & (wh.prod(1) > MIN_BOX_AREA_KEPT * np.maximum(full, 1e-9))
            boxes_t = clipped
        boxes_t, params_t, landmarks_t = boxes_t[keep], params_t[keep], landmarks_t[keep]
        xywh = np.concatenate([(boxes_t[:, :2] + boxes_t[:, 2:]) / 2, boxes_t[:, 2:] - boxes_t[:, :2]], 1) / size
        n = len(boxes_t)
        return {
            "img": torch.from_numpy(np.ascontiguousarray(canvas.transpose(2, 0, 1))),
            "cls": torch.zeros(n, 1),
            "bboxes": torch.from_numpy(xywh.astype(np.float32)).reshape(n, 4),
            "flame_params": torch.from_numpy(params_t).reshape(n, N_PARAMS),
            "landmarks": torch.from_numpy(landmarks_t.astype(np.float32)).reshape(n, 68, 3),
            "batch_idx": torch.zeros(n),
            "im_file": it["im_file"],
            "ori_shape": (h0, w0),
            "resized_shape": (size, size),
            "ratio_pad": ((float(A[0, 0]), float(A[1, 1])), (float(b[0]), float(b[1]))),
            "transform": (A, b),
        }

    def _crop_origin(self, rng: np.random.Generator, boxes: np.ndarray) -> np.ndarray:
        """Top-left corner of the training window in canvas pixels: around a random head whose box
        fits in the window (anywhere in the canvas when the image has none)."""
        c, s = self.crop, self.imgsz
        lo, hi = boxes[:, :2].clip(0, s), boxes[:, 2:].clip(0, s)
        fits = ((hi - lo) <= c).all(1) & ((hi - lo) > 0).all(1) if len(boxes) else np.zeros(0, bool)
        if fits.any():
            k = rng.choice(np.flatnonzero(fits))
            low = np.maximum(hi[k] - c, 0.0)  # the head's box stays inside the window
            high = np.minimum(lo[k], s - c)
            origin = rng.uniform(low, np.maximum(high, low))
        else:
            origin = rng.uniform(0, s - c, 2)
        return np.floor(origin)

    @staticmethod
    def collate_fn(items: list[dict]) -> dict:
        out = {"img": torch.stack([it["img"] for it in items])}
        for key in ("cls", "bboxes", "flame_params", "landmarks"):
            out[key] = torch.cat([it[key] for it in items])
        out["batch_idx"] = torch.cat([it["batch_idx"] + i for i, it in enumerate(items)])
        for key in ("im_file", "ori_shape", "resized_shape", "ratio_pad", "transform"):
            out[key] = [it[key] for it in items]
        return out

    def close_mosaic(self, hyp=None):  # the trainer calls this for close_mosaic; there is no mosaic here
        return None
