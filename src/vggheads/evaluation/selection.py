"""Which prediction a single-face benchmark scores: by IoU with the annotated box, by distance to a
point, with the VGGHeads scripts' score fallback."""

from __future__ import annotations

import numpy as np

from ..core.boxes import as_boxes, iou_matrix


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
