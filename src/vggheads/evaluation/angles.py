"""Euler-angle conventions of the head pose benchmarks, and the wrapped angular error.

Three conventions meet here (all angles in degrees, returned as ``(yaw, pitch, roll)``):

* **AFLW2000-3D** ``Pose_Para[:3]`` = (pitch, yaw, roll) in radians, 3DDFA's
  ``R = Rx(pitch)^T Ry(yaw)^T Rz(roll)^T`` in a y-up frame. This is also the paper's convention
  (:func:`vggheads.geometry.matrix_to_angles`): ``R_paper = diag(1, -1, -1) @ R_aflw``.
  Checked on the real samples in the tests (relative rotations between the samples' ``pt3d_68``
  agree with their ``Pose_Para`` to a few degrees).
* **BIWI "ypr"**: FSA-Net's formula on the transposed ``pose.txt`` matrix, used by FSA-Net,
  Hopenet, img2pose and the VGGHeads evaluation code (``roll = -atan2(R10, R00)``,
  ``yaw = -atan2(-R20, sqrt(R21^2 + R22^2))``, ``pitch = atan2(R21, R22)``).
* **BIWI "pyr"**: headposeplus' z-y'-x'' sequence (Biwi+), stored as (pitch, yaw, roll). The
  conversion between the two is headposeplus' ``_ypr2pyr``; the tests check it reproduces the
  ``pyr`` column of every published subset from its ``ypr`` column.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

CONVENTIONS = ("ypr", "pyr")


def wrapped_error(pred, gt) -> np.ndarray:
    """|pred - gt| on the circle, degrees in [0, 180] (the VGGHeads code's ``min(|x-y|, |x-y±360|)``)."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64)
    return np.abs((d + 180.0) % 360.0 - 180.0)


def aflw_pose_para_angles(pose_para) -> tuple[float, float, float]:
    """AFLW2000-3D ``Pose_Para`` (1, 7) or (7,) -> (yaw, pitch, roll) degrees."""
    p = np.asarray(pose_para, dtype=np.float64).reshape(-1)
    pitch, yaw, roll = np.degrees(p[:3])
    return float(yaw), float(pitch), float(roll)


def biwi_pose_matrix_angles(R) -> tuple[float, float, float]:
    """BIWI ``pose.txt`` rotation (3, 3) -> (yaw, pitch, roll) degrees, FSA-Net / VGGHeads formula."""
    Rt = np.asarray(R, dtype=np.float64)[:3, :3].T
    roll = -np.degrees(np.arctan2(Rt[1, 0], Rt[0, 0]))
    yaw = -np.degrees(np.arctan2(-Rt[2, 0], np.hypot(Rt[2, 1], Rt[2, 2])))
    pitch = np.degrees(np.arctan2(Rt[2, 1], Rt[2, 2]))
    return float(yaw), float(pitch), float(roll)


def ypr_to_pyr(ypr) -> np.ndarray:
    """BIWI 'ypr' rows (N, 3) = (yaw, pitch, roll) -> 'pyr' rows (N, 3) = (pitch, yaw, roll)."""
    ypr = np.atleast_2d(np.asarray(ypr, dtype=np.float64))
    y, p, r = (-ypr).T
    rot = Rotation.from_euler("zyx", np.stack([r, y, p], axis=1), degrees=True)
    return rot.as_euler("xyz", degrees=True)


def pyr_to_ypr(pyr) -> np.ndarray:
    """Inverse of :func:`ypr_to_pyr`."""
    pyr = np.atleast_2d(np.asarray(pyr, dtype=np.float64))
    r, y, p = Rotation.from_euler("xyz", pyr, degrees=True).as_euler("zyx", degrees=True).T
    return -np.stack([y, p, r], axis=1)


def to_convention(yaw_pitch_roll, convention: str) -> np.ndarray:
    """(N, 3) (yaw, pitch, roll) in the paper / 'ypr' convention -> (N, 3) (yaw, pitch, roll) in ``convention``."""
    ypr = np.atleast_2d(np.asarray(yaw_pitch_roll, dtype=np.float64))
    if convention == "ypr":
        return ypr
    if convention == "pyr":
        pyr = ypr_to_pyr(ypr)
        return pyr[:, [1, 0, 2]]
    raise ValueError(f"unknown Euler convention '{convention}' (known: {', '.join(CONVENTIONS)})")


def paper_large_angle_rule(yaw: float, pitch: float, roll: float, limit: float = 135.0) -> tuple[float, float, float]:
    """The VGGHeads code replaces a prediction with any |angle| > 135 by (0, 0, 0) before scoring."""
    if max(abs(yaw), abs(pitch), abs(roll)) > limit:
        return 0.0, 0.0, 0.0
    return yaw, pitch, roll


def pose_mae(pred, gt) -> dict[str, float]:
    """Mean wrapped errors of (N, 3) (yaw, pitch, roll) arrays, degrees: ``yaw_deg``, ``pitch_deg``,
    ``roll_deg`` and ``mae_deg`` (the mean of the three, as every pose table reports it)."""
    from ..core.metrics import PITCH_KEY, POSE_MAE_KEY, ROLL_KEY, YAW_KEY

    pred = np.atleast_2d(np.asarray(pred, dtype=np.float64))
    gt = np.atleast_2d(np.asarray(gt, dtype=np.float64))
    if len(gt) == 0:
        return {YAW_KEY: float("nan"), PITCH_KEY: float("nan"), ROLL_KEY: float("nan"), POSE_MAE_KEY: float("nan")}
    err = wrapped_error(pred, gt).mean(axis=0)
    return {YAW_KEY: float(err[0]), PITCH_KEY: float(err[1]), ROLL_KEY: float(err[2]), POSE_MAE_KEY: float(err.mean())}
