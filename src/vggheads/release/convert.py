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
convention, computed from only the vertices these need.
"""

from __future__ import annotations

import numpy as np
import torch

from ..geometry import FlameLayer, batch_rodrigues, matrix_to_angles, rot6d_to_matrix
from ..geometry.params import EXPRESSION, JAW, N_PARAMS, ROT6D, SCALE, SHAPE, TRANSLATION
from ..labelling.dad3dnet import dad_to_image, image_to_release

DAD_SIZE = 256


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


class SubsetDecoder:
    """Landmarks, head/face boxes and pose of image-pixel parameter vectors, decoding only the
    vertices of the head and face subsets and of the landmark triangles (the same arithmetic as
    :class:`~vggheads.geometry.FlameLayer` and :func:`~vggheads.geometry.decode`, all 300/100 components).

    Example::

        dec = SubsetDecoder(load_head_model("data/headmodel/head_model.npz"))
        out = dec(params)            # dict of numpy arrays: landmarks (N, 68, 3), head_box, face_box (N, 4), yaw...
    """

    def __init__(self, head_model):
        layer = FlameLayer(head_model)
        V = layer.n_vertices
        head = np.asarray(head_model.subsets["head"], dtype=np.int64)
        face = np.asarray(head_model.subsets["face"], dtype=np.int64)
        lmk = layer.lmk_vertices.numpy()                                              # (68, 3)
        # vertex order: face, then the rest of the head, then the rest: each box reduces over a slice when
        # one subset holds the other (FLAME's and the project's face lie inside the head)
        order = list(dict.fromkeys([*face.tolist(), *head.tolist(), *lmk.ravel().tolist()]))
        idx = np.asarray(order, dtype=np.int64)
        pos = np.full(V, -1, dtype=np.int64)
        pos[idx] = np.arange(len(idx))
        k = layer.dirs.shape[0]
        self.dirs = layer.dirs.view(k, V, 3)[:, torch.from_numpy(idx)].reshape(k, -1).contiguous()
        self.n = len(idx)
        jaw_idx = layer.jaw_idx.numpy()
        in_subset = pos[jaw_idx] >= 0
        self.jaw_pos = torch.from_numpy(pos[jaw_idx[in_subset]])
        self.jaw_weights = layer.jaw_weights[torch.from_numpy(np.flatnonzero(in_subset))]
        self.jaw_joint, self.jaw_joint_dirs = layer.jaw_joint, layer.jaw_joint_dirs
        self.n_shape, self.n_expr = layer.n_shape, layer.n_expr
        face_pos, head_pos = pos[face], pos[head]
        self.face_sel = slice(0, len(face)) if np.array_equal(np.sort(face_pos), np.arange(len(face))) \
            else torch.from_numpy(face_pos)
        self.head_sel = slice(0, len(head)) if np.array_equal(np.sort(head_pos), np.arange(len(head))) \
            else torch.from_numpy(head_pos)
        self.lmk_pos = torch.from_numpy(pos[lmk].reshape(-1))                         # (204,)
        self.lmk_bary = layer.lmk_bary

    def canonical(self, params: torch.Tensor) -> torch.Tensor:
        """(B, 413) float32 -> canonical subset vertices (B, n, 3) (the FlameLayer's, +0.05 z)."""
        B = params.shape[0]
        rot = batch_rodrigues(params[:, JAW])
        rmi = rot - torch.eye(3, dtype=rot.dtype)
        betas = torch.cat([params[:, SHAPE][:, :self.n_shape], params[:, EXPRESSION][:, :self.n_expr]], 1)
        coeffs = torch.cat([betas, rmi.flatten(1), torch.ones(B, 1, dtype=betas.dtype)], 1)
        verts = torch.mm(coeffs, self.dirs).view(B, self.n, 3)
        if len(self.jaw_pos):
            joint = torch.addmm(self.jaw_joint.view(1, 3), betas, self.jaw_joint_dirs)
            moved = verts.index_select(1, self.jaw_pos) - joint[:, None]
            verts.index_add_(1, self.jaw_pos, torch.bmm(moved, rmi.transpose(1, 2)) * self.jaw_weights)
        return verts

    def image_xy(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 413) -> (image x, y of the subset vertices (B, 2, n), R (B, 3, 3)); depth is never needed here."""
        verts = self.canonical(params)
        R = rot6d_to_matrix(params[:, ROT6D])
        sR = R[:, :2] * params[:, SCALE].reshape(-1, 1, 1)                              # (B, 2, 3)
        xy = torch.baddbmm(params[:, TRANSLATION][:, :2, None], sR, verts.transpose(1, 2))
        return xy, R

    @torch.no_grad()
    def __call__(self, params: np.ndarray) -> dict[str, np.ndarray]:
        p = torch.from_numpy(np.ascontiguousarray(params, dtype=np.float32).reshape(-1, N_PARAMS))
        if not len(p):
            z = np.zeros((0,), np.float32)
            return {"landmarks": np.zeros((0, 68, 3), np.float32), "head_box": np.zeros((0, 4), np.float32),
                    "face_box": np.zeros((0, 4), np.float32), "yaw": z, "pitch": z, "roll": z}
        xy, R = self.image_xy(p)
        B = len(p)
        corners = xy.index_select(2, self.lmk_pos).view(B, 2, 68, 3)                    # (B, xy, landmark, corner)
        lms = torch.einsum("bclk,lk->blc", corners, self.lmk_bary)                       # (B, 68, 2)
        e1, e2 = corners[..., 1] - corners[..., 0], corners[..., 2] - corners[..., 0]   # (B, 2, 68)
        normal_z = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        landmarks = torch.cat([lms, (normal_z < 0).to(lms.dtype)[..., None]], -1)
        head, face = xy[:, :, self.head_sel], xy[:, :, self.face_sel]
        yaw, pitch, roll = matrix_to_angles(R)
        f = lambda t: t.numpy().astype(np.float32)
        return {"landmarks": f(landmarks), "head_box": f(torch.cat([head.amin(2), head.amax(2)], 1)),
                "face_box": f(torch.cat([face.amin(2), face.amax(2)], 1)), "yaw": f(yaw), "pitch": f(pitch),
                "roll": f(roll)}
