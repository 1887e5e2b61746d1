"""The release's parameter convention, and what is derived from a parameter vector on import.

**Convention** (paper section 2; ``yolo_head_training/yolo_head/dataset_parsing.get_vertices``):
the release's ``3dmm_params`` are DAD-3DNet's, re-expressed in the pixels of the head's extended
crop, so ``v_crop = ((s + 1) R v + [tx, ty, 0] + 1) / 2 * 256`` and image pixels are
``v_crop + extended_bbox[:2]``. This project stores ``v_img = s' R v + t'``:
``s' = 128 (s + 1)``, ``t'_xy = 128 (t_xy + 1) + extended_bbox[:2]``; the release's depth
translation (which its projection ignores) is kept as ``t'_z = 128 (t_z + 1)`` so that the two
conversions invert each other exactly.

**Derived** (:class:`SubsetDecoder`): 68 landmarks with self-occlusion visibility, the head box (extent
of the head model's ``head`` vertex subset: the paper's head without ears, eyeballs and neck), the
face box (extent of the ``face`` subset, the package's face box) and yaw/pitch/roll in the paper's
convention, computed from only the vertices these need. The decoder is numpy-only (the same
arithmetic as :class:`~vggheads.geometry.FlameLayer` and :func:`~vggheads.geometry.decode`, which
the tests compare it with): an import job never loads torch (about 0.7 GB of resident libraries).
"""

from __future__ import annotations

import numpy as np

from ..core.param_layout import N_PARAMS, SCALE_INDEX
from ..labelling.dad3dnet import dad_to_image, image_to_release

DAD_SIZE = 256
CANONICAL_Z_OFFSET = 0.05  # as geometry.layer: +0.05 on z after LBS
JAW_JOINT = 2  # FLAME joints: root, neck, jaw, left eye, right eye
JAW_FEATURES = slice(9 * (JAW_JOINT - 1), 9 * JAW_JOINT)
BATCH = 512  # heads per product: bounds the decoding's memory whatever the chunk


def release_to_image(params: np.ndarray, extended_xywh: np.ndarray) -> np.ndarray:
    """Release ``3dmm_params`` ``(N, 413)`` of heads with ``extended_bbox`` ``(N, 4)`` xywh -> image pixels (float32)."""
    p = np.asarray(params, dtype=np.float64).reshape(-1, N_PARAMS)
    ext = np.asarray(extended_xywh, dtype=np.float64).reshape(-1, 4)
    n = len(p)
    return dad_to_image(p, np.ones(n), np.zeros(n), np.zeros(n), ext[:, 0], ext[:, 1], size=DAD_SIZE)


def image_to_release_xywh(params: np.ndarray, extended_xywh: np.ndarray) -> np.ndarray:
    """The inverse of :func:`release_to_image`."""
    ext = np.asarray(extended_xywh, dtype=np.float64).reshape(-1, 4)
    xyxy = np.concatenate([ext[:, :2], ext[:, :2] + ext[:, 2:]], 1)
    return image_to_release(params, xyxy, size=DAD_SIZE)


def rodrigues(rot_vecs: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Axis-angle ``(N, 3)`` -> ``(N, 3, 3)``, as :func:`vggheads.geometry.batch_rodrigues` (its ``+ eps`` included)."""
    angle = np.linalg.norm(rot_vecs + eps, axis=1, keepdims=True)
    axis = rot_vecs / angle
    cos, sin = np.cos(angle)[:, :, None], np.sin(angle)[:, :, None]
    rx, ry, rz = axis[:, 0], axis[:, 1], axis[:, 2]
    z = np.zeros_like(rx)
    K = np.stack([z, -rz, ry, rz, z, -rx, -ry, rx, z], axis=1).reshape(-1, 3, 3)
    return np.eye(3, dtype=rot_vecs.dtype) + sin * K + (1 - cos) * (K @ K)


def rot6d_matrix(rot6d: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """6D ``(N, 6)`` -> ``(N, 3, 3)``, as :func:`vggheads.geometry.rot6d_to_matrix` (paper section 2)."""
    a1, a2 = rot6d[:, :3], rot6d[:, 3:]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=1, keepdims=True), eps)
    c = np.cross(b1, a2)
    b3 = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), eps)
    b2 = -np.cross(b1, b3)
    return np.stack([b1, b2, b3], axis=-1)


def matrix_angles(R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(N, 3, 3)`` -> (yaw, pitch, roll) degrees, as :func:`vggheads.geometry.matrix_to_angles` (the paper's convention)."""
    Rt = np.swapaxes(np.asarray(R, dtype=np.float64), -1, -2)
    e1 = np.arcsin(np.clip(-Rt[..., 2, 0], -1.0, 1.0))
    e0 = np.arctan2(Rt[..., 2, 1], Rt[..., 2, 2])
    e2 = np.arctan2(Rt[..., 1, 0], Rt[..., 0, 0])
    wrap = lambda a: np.remainder(a + 180.0, 360.0) - 180.0
    return wrap(np.degrees(e1)), wrap(np.degrees(e0) - 180.0), wrap(np.degrees(e2))


class SubsetDecoder:
    """Landmarks, head/face boxes and pose of image-pixel parameter vectors (all 300/100 components),
    decoding only the vertices of the head and face subsets and of the landmark triangles.

    Example::

        dec = SubsetDecoder(load_head_model("data/headmodel/head_model.npz"))
        out = dec(params)            # numpy: landmarks (N, 68, 3), head_box, face_box (N, 4), yaw, pitch, roll (N,)
    """

    def __init__(self, head_model, batch: int = BATCH):
        m = head_model
        V = m.n_vertices
        head = np.asarray(m.subsets["head"], dtype=np.int64)
        face = np.asarray(m.subsets["face"], dtype=np.int64)
        lmk = np.asarray(m.faces)[np.asarray(m.lmk_faces)]  # (68, 3) vertex ids
        jaw_w = np.asarray(m.weights, dtype=np.float32)[:, JAW_JOINT]
        # vertex order: face, then the rest of the head, then the rest, so that each box reduces over a
        # slice when one subset holds the other (FLAME's and the project's face lie inside the head);
        # within each part the vertices the jaw moves come first, so the jaw is applied to 3 slices
        parts, seen = [], set()
        for group in (face, head, lmk.ravel()):
            part = [v for v in dict.fromkeys(group.tolist()) if v not in seen]
            seen.update(part)
            part = np.asarray(part, dtype=np.int64)
            moves = jaw_w[part] != 0
            parts.append((np.concatenate([part[moves], part[~moves]]), int(moves.sum())))
        idx = np.concatenate([p for p, _ in parts])
        starts = np.cumsum([0] + [len(p) for p, _ in parts])
        self.jaw_runs = [(int(a), int(a) + n) for a, (_, n) in zip(starts, parts) if n]
        pos = np.full(V, -1, dtype=np.int64)
        pos[idx] = np.arange(len(idx))
        self.n, self.batch = len(idx), int(batch)
        offset = np.array([0.0, 0.0, CANONICAL_Z_OFFSET], dtype=np.float32)
        template = (m.v_template[idx] + offset)[:, :, None]  # (n, 3, 1)
        # one matrix for the linear part, rows [shape 300, expression 100, jaw correctives 9, template]
        self.dirs = np.ascontiguousarray(
            np.concatenate([m.shapedirs[idx], m.posedirs[idx][:, :, JAW_FEATURES], template], axis=2)
            .reshape(self.n * 3, -1)
            .T,
            dtype=np.float32,
        )
        jreg = np.asarray(m.J_regressor, dtype=np.float32)[JAW_JOINT]
        self.jaw_joint = (jreg @ m.v_template + offset).astype(np.float32)  # (3,)
        self.jaw_joint_dirs = np.einsum("v,vck->kc", jreg, m.shapedirs).astype(np.float32)  # (400, 3)
        self.jaw_weights = [jaw_w[idx[a:b]][:, None] for a, b in self.jaw_runs]
        face_pos, head_pos = pos[face], pos[head]
        self.face_sel = slice(0, len(face)) if np.array_equal(np.sort(face_pos), np.arange(len(face))) else face_pos
        self.head_sel = slice(0, len(head)) if np.array_equal(np.sort(head_pos), np.arange(len(head))) else head_pos
        self.lmk_pos = pos[lmk].reshape(-1)  # (204,)
        self.lmk_bary = np.asarray(m.lmk_bary, dtype=np.float32)

    def canonical(self, params: np.ndarray) -> np.ndarray:
        """(B, 413) float32 -> canonical subset vertices (B, n, 3), +0.05 z."""
        B = len(params)
        rmi = rodrigues(params[:, 400:403]) - np.eye(3, dtype=np.float32)
        coeffs = np.concatenate([params[:, :400], rmi.reshape(B, 9), np.ones((B, 1), np.float32)], 1)
        verts = np.matmul(coeffs, self.dirs).reshape(B, self.n, 3)
        if self.jaw_runs:  # jaw skinning: v + w (R - I)(v - j) on the vertices it moves (views, in place)
            joint = (self.jaw_joint + params[:, :400] @ self.jaw_joint_dirs)[:, None]
            rmi_t = np.swapaxes(rmi, 1, 2)
            for (a, b), w in zip(self.jaw_runs, self.jaw_weights):
                run = verts[:, a:b]
                run += np.matmul(run - joint, rmi_t) * w
        return verts

    def image_xy(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 413) -> (image x, y of the subset vertices (B, 2, n), R (B, 3, 3)); depth is never needed here."""
        verts = self.canonical(params)
        R = rot6d_matrix(params[:, 403:409])
        sR = R[:, :2] * params[:, SCALE_INDEX].reshape(-1, 1, 1)  # (B, 2, 3)
        xy = np.matmul(sR, np.swapaxes(verts, 1, 2)) + params[:, 409:411, None]
        return xy, R

    def __call__(self, params: np.ndarray) -> dict[str, np.ndarray]:
        p = np.ascontiguousarray(params, dtype=np.float32).reshape(-1, N_PARAMS)
        parts = [self._decode(p[s : s + self.batch]) for s in range(0, len(p), self.batch)]
        if not parts:
            z = np.zeros((0,), np.float32)
            return {
                "landmarks": np.zeros((0, 68, 3), np.float32),
                "head_box": np.zeros((0, 4), np.float32),
                "face_box": np.zeros((0, 4), np.float32),
                "yaw": z,
                "pitch": z,
                "roll": z,
            }
        return {k: np.concatenate([d[k] for d in parts]) for k in parts[0]}

    def _decode(self, p: np.ndarray) -> dict[str, np.ndarray]:
        xy, R = self.image_xy(p)
        B = len(p)
        corners = xy[:, :, self.lmk_pos].reshape(B, 2, 68, 3)  # (B, xy, landmark, corner)
        lms = np.einsum("bclk,lk->blc", corners, self.lmk_bary)  # (B, 68, 2)
        e1, e2 = corners[..., 1] - corners[..., 0], corners[..., 2] - corners[..., 0]  # (B, 2, 68)
        normal_z = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        landmarks = np.concatenate([lms, (normal_z < 0).astype(np.float32)[..., None]], -1)
        head, face = xy[:, :, self.head_sel], xy[:, :, self.face_sel]
        yaw, pitch, roll = matrix_angles(R)
        f32 = lambda a: np.asarray(a, dtype=np.float32)
        return {
            "landmarks": f32(landmarks),
            "head_box": f32(np.concatenate([head.min(2), head.max(2)], 1)),
            "face_box": f32(np.concatenate([face.min(2), face.max(2)], 1)),
            "yaw": f32(yaw),
            "pitch": f32(pitch),
            "roll": f32(roll),
        }
