"""COCO-17 -> OpenPose-18 and the OpenPose condition image, drawn as the paper's pipeline does.

Neck = midpoint of the shoulders; a limb is drawn only where both ends have confidence >= the
threshold (paper: 0.3); colours, limb order and the blended ellipse limbs follow the OpenPose
renderer that the SDXL openpose adapters were trained on.
"""

from __future__ import annotations

import math

import numpy as np

COCO_NAMES = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]
# OpenPose-18 index -> COCO index (neck, index 1, is computed).
OPENPOSE_FROM_COCO = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
# OpenPose limbs (0-based pairs) in the renderer's order; the first 17 are drawn.
LIMBS = [
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
]
COLORS = [
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
]


def coco_to_openpose(kpts: np.ndarray) -> np.ndarray:
    """(..., 17, 3) COCO keypoints (x, y, conf) -> (..., 18, 3) OpenPose keypoints."""
    kpts = np.asarray(kpts, dtype=np.float32)
    out = np.zeros(kpts.shape[:-2] + (18, 3), dtype=np.float32)
    for op, coco in enumerate(OPENPOSE_FROM_COCO):
        if coco is not None:
            out[..., op, :] = kpts[..., coco, :]
    ls, rs = kpts[..., 5, :], kpts[..., 6, :]
    out[..., 1, :2] = (ls[..., :2] + rs[..., :2]) / 2
    out[..., 1, 2] = np.minimum(ls[..., 2], rs[..., 2])
    return out


def draw_openpose(
    persons: list[np.ndarray], width: int, height: int, min_confidence: float = 0.3, stickwidth: int = 4
) -> np.ndarray:
    """Draw COCO-17 skeletons ((17, 3) arrays) as an OpenPose condition image (H, W, 3) uint8 RGB on black."""
    import cv2

    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    ops = [coco_to_openpose(p) for p in persons]
    for op in ops:
        for i, (a, b) in enumerate(LIMBS):
            if op[a, 2] < min_confidence or op[b, 2] < min_confidence:
                continue
            (x1, y1), (x2, y2) = op[a, :2], op[b, :2]
            length = math.hypot(x2 - x1, y2 - y1)
            if length < 1:
                continue
            angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
            poly = cv2.ellipse2Poly(
                (int(round((x1 + x2) / 2)), int(round((y1 + y2) / 2))),
                (int(round(length / 2)), stickwidth),
                int(round(angle)),
                0,
                360,
                1,
            )
            limb = canvas.copy()
            cv2.fillConvexPoly(limb, poly, COLORS[i])
            canvas = cv2.addWeighted(canvas, 0.4, limb, 0.6, 0)
    for op in ops:
        for j in range(18):
            x, y, c = op[j]
            if c < min_confidence:
                continue
            cv2.circle(canvas, (int(round(x)), int(round(y))), max(2, stickwidth), COLORS[j], thickness=-1)
    return canvas
