"""2D similarity maps of the image applied to parameter vectors, points and boxes (numpy).

A 2D similarity of the image (letterbox, affine augmentation, un-letterbox) maps a parameter
vector exactly: ``v_img = s R v + t`` becomes ``k s (Rz R) v + (A t + b)``. Used by the
detector's dataset (augmentation) and inference (back to input pixels).
"""

from __future__ import annotations

import numpy as np

from .param_layout import N_PARAMS, ROT6D, SCALE, TRANSLATION
from .rotmat import matrix_to_rot6d, rot6d_to_matrix


def similarity_parts(A: np.ndarray) -> tuple[float, float]:
    """(scale k, angle theta in radians) of a 2x2 similarity ``A = k [[cos, -sin], [sin, cos]]``."""
    A = np.asarray(A, dtype=np.float64)
    k = float(np.sqrt(abs(np.linalg.det(A))))
    theta = float(np.arctan2(A[1, 0], A[0, 0]))
    return k, theta


def transform_params(params: np.ndarray, A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Apply the image map ``p -> A p + b`` (A a 2x2 similarity: scale and rotation about z) to
    parameter vectors ``(N, 413)`` in image pixels; returns new vectors (float32).

    ``R' = Rz(theta) R``, ``s' = k s``, ``t'_xy = A t_xy + b``, ``t'_z = k t_z``; shape,
    expression and jaw do not change.
    """
    params = np.asarray(params, dtype=np.float64).reshape(-1, N_PARAMS)
    out = params.copy()
    if not len(params):
        return out.astype(np.float32)
    k, theta = similarity_parts(A)
    c, s = np.cos(theta), np.sin(theta)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    R = rot6d_to_matrix(params[:, ROT6D])
    out[:, ROT6D] = matrix_to_rot6d(rz @ R)
    t = params[:, TRANSLATION]
    out[:, TRANSLATION.start : TRANSLATION.start + 2] = t[:, :2] @ np.asarray(A, np.float64).T + np.asarray(
        b, np.float64
    )
    out[:, TRANSLATION.start + 2] = k * t[:, 2]
    out[:, SCALE] = k * params[:, SCALE]
    return out.astype(np.float32)


def transform_points(points: np.ndarray, A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(..., >=2)`` points: x, y mapped by ``A p + b``; further columns (depth, visibility) kept."""
    pts = np.asarray(points, dtype=np.float64).copy()
    pts[..., :2] = pts[..., :2] @ np.asarray(A, np.float64).T + np.asarray(b, np.float64)
    return pts


def transform_boxes(boxes: np.ndarray, A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """xyxy boxes ``(N, 4)`` -> the xyxy boxes of their mapped corners (exact for scale + shift)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    corners = boxes[:, [[0, 1], [2, 1], [2, 3], [0, 3]]]  # (N, 4, 2)
    mapped = transform_points(corners, A, b)
    return np.concatenate([mapped.min(1), mapped.max(1)], axis=1)
