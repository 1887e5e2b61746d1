"""Rotation matrices in numpy: the paper's 6D representation and its yaw/pitch/roll convention.

The same arithmetic as the torch functions of :mod:`vggheads.geometry.rotations` (which the tests
compare them with), for code that must not load torch (:mod:`.similarity`, :mod:`.fitting`).
Frames: the head model is FLAME's (x to the subject's left, y up, z out of the face); images are
x right, y down, z away from the camera, so a frontal face is ``R = diag(1, -1, -1)``.
"""

from __future__ import annotations

import numpy as np


def _normalize(v: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def rot6d_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """6D rotation ``(..., 6)`` -> rotation matrix ``(..., 3, 3)``, as :func:`vggheads.geometry.rot6d_to_matrix`."""
    rot6d = np.asarray(rot6d)
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = _normalize(a1)
    b3 = _normalize(np.cross(b1, a2))
    b2 = -np.cross(b1, b3)
    return np.stack([b1, b2, b3], axis=-1)


def matrix_to_rot6d(R: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(..., 3, 3)`` -> 6D ``(..., 6)``: its first two columns, the inverse of :func:`rot6d_to_matrix`."""
    R = np.asarray(R)
    return np.concatenate([R[..., :, 0], R[..., :, 1]], axis=-1)


def _wrap_degrees(a: np.ndarray) -> np.ndarray:
    """Wrap to [-180, 180)."""
    return np.remainder(a + 180.0, 360.0) - 180.0


def matrix_to_angles(R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation ``(..., 3, 3)`` -> ``(yaw, pitch, roll)`` in degrees (float64), each ``(...)``, wrapped
    to [-180, 180): the paper's convention, as :func:`vggheads.geometry.matrix_to_angles`.

    ``e = Rotation.from_matrix(R.T).as_euler('xyz', degrees=True)``; roll = e2, pitch = e0 - 180, yaw = e1.
    """
    Rt = np.swapaxes(np.asarray(R, dtype=np.float64), -1, -2)
    e1 = np.arcsin(np.clip(-Rt[..., 2, 0], -1.0, 1.0))
    e0 = np.arctan2(Rt[..., 2, 1], Rt[..., 2, 2])
    e2 = np.arctan2(Rt[..., 1, 0], Rt[..., 0, 0])
    return _wrap_degrees(np.rad2deg(e1)), _wrap_degrees(np.rad2deg(e0) - 180.0), _wrap_degrees(np.rad2deg(e2))
