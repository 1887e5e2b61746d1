"""Rotations: the paper's 6D representation, axis-angle, and its yaw/pitch/roll convention.

Frames: the head model is FLAME's (x to the subject's left, y up, z out of the face). Images are
x right, y down, z away from the camera. A frontal face is therefore ``R = diag(1, -1, -1)``,
and that R has yaw = pitch = roll = 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

FRONTAL = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))  # model frame -> image frame, no head rotation


def _normalize(v: Tensor, eps: float = 1e-8) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(eps)


def rot6d_to_matrix(rot6d: Tensor) -> Tensor:
    """6D rotation ``(..., 6)`` -> rotation matrix ``(..., 3, 3)`` (paper section 2).

    ``a1, a2 = rot6d[..., :3], rot6d[..., 3:]``; ``b1 = norm(a1)``, ``b3 = norm(b1 x a2)``,
    ``b2 = -b1 x b3``; R has b1, b2, b3 as its columns (b2 is a2 made orthogonal to b1).
    """
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = _normalize(a1)
    b3 = _normalize(torch.linalg.cross(b1, a2, dim=-1))
    b2 = -torch.linalg.cross(b1, b3, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: Tensor) -> Tensor:
    """Rotation matrix ``(..., 3, 3)`` -> 6D ``(..., 6)``: its first two columns, the inverse of :func:`rot6d_to_matrix`."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def batch_rodrigues(rot_vecs: Tensor, eps: float = 1e-8) -> Tensor:
    """Axis-angle ``(N, 3)`` -> rotation matrices ``(N, 3, 3)`` (Rodrigues' formula).

    Same formula as ``smplx.lbs.batch_rodrigues`` (including its ``+ eps`` inside the norm, so the
    two agree to float precision near zero).
    """
    angle = torch.norm(rot_vecs + eps, dim=1, keepdim=True)  # (N, 1)
    axis = rot_vecs / angle
    cos = torch.cos(angle)[:, :, None]
    sin = torch.sin(angle)[:, :, None]
    rx, ry, rz = axis.unbind(dim=1)
    zeros = torch.zeros_like(rx)
    K = torch.stack([zeros, -rz, ry, rz, zeros, -rx, -ry, rx, zeros], dim=1).view(-1, 3, 3)
    ident = torch.eye(3, dtype=rot_vecs.dtype, device=rot_vecs.device)
    return ident + sin * K + (1 - cos) * torch.bmm(K, K)


def _rot_x(a: Tensor) -> Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([o, z, z, z, c, -s, z, s, c], dim=-1).unflatten(-1, (3, 3))


def _rot_y(a: Tensor) -> Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], dim=-1).unflatten(-1, (3, 3))


def _rot_z(a: Tensor) -> Tensor:
    c, s, o, z = torch.cos(a), torch.sin(a), torch.ones_like(a), torch.zeros_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], dim=-1).unflatten(-1, (3, 3))


def _wrap_degrees(a: Tensor) -> Tensor:
    """Wrap to [-180, 180)."""
    return torch.remainder(a + 180.0, 360.0) - 180.0


def matrix_to_angles(R):
    """Rotation ``(..., 3, 3)`` -> ``(yaw, pitch, roll)`` in degrees, each ``(...)``, wrapped to [-180, 180).

    The paper's convention: ``e = Rotation.from_matrix(R.T).as_euler('xyz', degrees=True)``
    (extrinsic x, y, z, i.e. ``R.T = Rz(e2) @ Ry(e1) @ Rx(e0)``); roll = e2, pitch = e0 - 180,
    yaw = e1. Accepts torch tensors or numpy arrays and returns the same kind.
    """
    is_numpy = not isinstance(R, Tensor)
    Rt = torch.as_tensor(np.asarray(R, dtype=np.float64) if is_numpy else R).transpose(-1, -2)
    e1 = torch.asin((-Rt[..., 2, 0]).clamp(-1.0, 1.0))
    e0 = torch.atan2(Rt[..., 2, 1], Rt[..., 2, 2])
    e2 = torch.atan2(Rt[..., 1, 0], Rt[..., 0, 0])
    yaw = _wrap_degrees(torch.rad2deg(e1))
    pitch = _wrap_degrees(torch.rad2deg(e0) - 180.0)
    roll = _wrap_degrees(torch.rad2deg(e2))
    if is_numpy:
        return yaw.numpy(), pitch.numpy(), roll.numpy()
    return yaw, pitch, roll


def angles_to_matrix(yaw, pitch, roll):
    """``(yaw, pitch, roll)`` degrees, each ``(...)`` -> rotation ``(..., 3, 3)``; the inverse of :func:`matrix_to_angles`.

    Exact for |yaw| < 90 (the range of the convention's middle angle). Accepts torch tensors,
    numpy arrays or floats; returns numpy for non-tensor input.
    """
    is_numpy = not isinstance(yaw, Tensor)
    if is_numpy:
        yaw, pitch, roll = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (yaw, pitch, roll))
    yaw, pitch, roll = torch.broadcast_tensors(yaw, pitch, roll)
    e0, e1, e2 = torch.deg2rad(pitch + 180.0), torch.deg2rad(yaw), torch.deg2rad(roll)
    Rt = _rot_z(e2) @ _rot_y(e1) @ _rot_x(e0)
    R = Rt.transpose(-1, -2)
    return R.numpy() if is_numpy else R
