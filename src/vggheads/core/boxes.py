"""Boxes: formats (xyxy is the project's one convention, xywh where a format needs it), IoU
(continuous and the +1-pixel convention of the WIDER FACE evaluation), extents and areas."""

from __future__ import annotations

import numpy as np


def as_boxes(boxes) -> np.ndarray:
    """Anything box-like -> float64 (N, 4); an empty input gives (0, 4)."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4))
    return arr.reshape(-1, 4)


def xywh_to_xyxy(boxes) -> np.ndarray:
    b = as_boxes(boxes).copy()
    b[:, 2:] += b[:, :2]
    return b


def xyxy_to_xywh(boxes) -> np.ndarray:
    b = as_boxes(boxes).copy()
    b[:, 2:] -= b[:, :2]
    return b


def iou_matrix(a, b, plus_one: bool = False) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4 xyxy) with every box of ``b`` (M, 4) -> (N, M).

    ``plus_one``: the inclusive-pixel convention of py-faster-rcnn's ``bbox_overlaps`` (widths
    are ``x2 - x1 + 1``), which the WIDER FACE evaluation uses. COCO (and this default) use
    continuous coordinates.
    """
    a, b = as_boxes(a), as_boxes(b)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    one = 1.0 if plus_one else 0.0
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + one
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + one
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    return out


def points_box(points) -> np.ndarray:
    """The xyxy extent of (N, >=2) points (NaN rows ignored)."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    p = p[np.isfinite(p).all(axis=1)]
    return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])


def box_area(box) -> float:
    b = as_boxes(box)[0]
    return float(max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0))
