"""Validation metrics of the paper (section 4): NME over the head vertices after Hungarian matching at
IoU >= 0.5, and the failure rate (NME > 0.05); plus the same NME over the 68 landmarks.
"""

from __future__ import annotations

import numpy as np

MATCH_IOU = 0.5        # a prediction and a ground-truth head are paired only at IoU >= this
FAILURE_NME = 0.05     # a head with NME above this is a failure (paper: FR)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes ``(N, 4)`` x ``(M, 4)``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def match_heads(gt_boxes: np.ndarray, pred_boxes: np.ndarray, iou_threshold: float = MATCH_IOU) -> list[tuple[int, int]]:
    """Hungarian matching maximising the summed IoU; returns (gt index, prediction index) pairs with IoU >= threshold."""
    from scipy.optimize import linear_sum_assignment

    iou = box_iou(gt_boxes, pred_boxes)
    if not iou.size:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= iou_threshold]


def nme(pred_points: np.ndarray, gt_points: np.ndarray, gt_box: np.ndarray) -> float:
    """Mean 2D distance between corresponding points, divided by sqrt(w * h) of the ground-truth box."""
    d = np.linalg.norm(np.asarray(pred_points)[:, :2] - np.asarray(gt_points)[:, :2], axis=-1).mean()
    w, h = float(gt_box[2] - gt_box[0]), float(gt_box[3] - gt_box[1])
    return float(d / max(np.sqrt(max(w, 0.0) * max(h, 0.0)), 1e-9))


def summarise(nmes: list[float], nmes68: list[float], n_gt: int, nmes68_anchor: list[float]) -> dict[str, float]:
    """NME (head vertices), FR, NME over 68 landmarks, the fraction of ground-truth heads matched, and
    the 68-landmark NME of the best-scoring anchor inside each ground-truth box.

    The last one needs no detection: it measures the 3D regression where the head is, so an
    untrained network has a value to compare with (its detections rarely reach IoU 0.5).
    """
    arr = np.asarray(nmes, dtype=np.float64)
    arr68 = np.asarray(nmes68, dtype=np.float64)
    anchor = np.asarray(nmes68_anchor, dtype=np.float64)
    return {
        "nme": float(arr.mean()) if arr.size else float("nan"),
        "fr": float((arr > FAILURE_NME).mean()) if arr.size else float("nan"),
        "nme68": float(arr68.mean()) if arr68.size else float("nan"),
        "matched": float(arr.size / n_gt) if n_gt else float("nan"),
        "nme68_anchor": float(anchor.mean()) if anchor.size else float("nan"),
    }
