"""Box helpers shared by the protocols: IoU (continuous and the +1-pixel convention), formats."""

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


def select_by_iou(heads: list, box, use_face_box: bool = True):
    """The prediction whose (face) box overlaps ``box`` (xyxy) most; the highest-scoring one when
    none overlaps (the VGGHeads scripts' rule); None for an empty list."""
    if not heads:
        return None
    mine = [h.face_box if (use_face_box and h.face_box is not None) else h.box for h in heads]
    ious = iou_matrix(np.asarray(mine), as_boxes(box))[:, 0]
    if ious.max() <= 0:
        return max(heads, key=lambda h: h.score)
    best = np.flatnonzero(ious == ious.max())
    return max((heads[i] for i in best), key=lambda h: h.score)


def select_nearest(heads: list, point):
    """The prediction whose box centre is nearest ``point`` (x, y); None for an empty list."""
    if not heads:
        return None
    p = np.asarray(point, dtype=np.float64)
    return min(heads, key=lambda h: float(np.hypot((h.box[0] + h.box[2]) / 2 - p[0], (h.box[1] + h.box[3]) / 2 - p[1])))


def with_score_fallback(heads: list, min_score: float | None, fallback_score: float | None) -> list:
    """Keep heads scoring >= ``min_score``; if none, those >= ``fallback_score`` (the VGGHeads pose
    scripts use 0.5 then 0.1)."""
    if min_score is None:
        return list(heads)
    kept = [h for h in heads if h.score >= min_score]
    if not kept and fallback_score is not None:
        kept = [h for h in heads if h.score >= fallback_score]
    return kept
