"""``FlameLayer``: the head model's constants as buffers and a fast canonical forward pass."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .lbs import lbs
from .params import N_EXPR, N_SHAPE
from .rotations import batch_rodrigues

CANONICAL_Z_OFFSET = 0.05  # the paper adds 0.05 to z after LBS, before rotating (head_detector/flame.py)
JAW_JOINT = 2  # FLAME joints: root, neck, jaw, left eye, right eye
JAW_FEATURES = slice(9 * (JAW_JOINT - 1), 9 * JAW_JOINT)  # the jaw's 9 pose-corrective features


class FlameLayer(nn.Module):
    """Canonical head vertices from shape, expression and jaw (the paper's mesh step, section 2).

    The paper runs full LBS with ``betas = [shape, expression]`` and pose
    ``[0 global, 0 neck, jaw, 0 eyes]``, then adds 0.05 to z. With only the jaw rotated, LBS
    reduces to: template + blend shapes + the jaw's pose correctives (one matrix product), then
    one rigid jaw rotation blended by the jaw's skinning weights on the vertices it moves. Only the first
    ``n_shape`` / ``n_expr`` components take part (the paper's L model predicts 128 / 64 and pads
    the rest with zeros); extra input columns are ignored.

    Example::

        layer = FlameLayer(load_head_model("data/headmodel/head_model.npz"), n_shape=128, n_expr=64)
        verts = layer(shape, expression, jaw)      # (B, V, 3)
    """

    def __init__(self, head_model, n_shape: int = N_SHAPE, n_expr: int = N_EXPR):
        super().__init__()
        if not (0 <= n_shape <= N_SHAPE and 0 <= n_expr <= N_EXPR):
            raise ValueError(f"n_shape must be in 0..{N_SHAPE} and n_expr in 0..{N_EXPR}, got {n_shape}, {n_expr}")
        self.n_shape, self.n_expr = n_shape, n_expr
        m = head_model
        V = m.v_template.shape[0]
        active = np.concatenate([m.shapedirs[:, :, :n_shape], m.shapedirs[:, :, N_SHAPE : N_SHAPE + n_expr]], axis=2)
        jaw_posedirs = m.posedirs[:, :, JAW_FEATURES]  # (V, 3, 9)
        offset = np.array([0.0, 0.0, CANONICAL_Z_OFFSET], dtype=np.float32)
        template = (m.v_template + offset)[:, :, None]
        # one matrix for the whole linear part: [shape, expression, jaw correctives, template] rows
        dirs = np.concatenate([active, jaw_posedirs, template], axis=2).reshape(V * 3, -1).T  # (K + 10, V*3)
        jreg = m.J_regressor.astype(np.float32)
        jaw_w = m.weights[:, JAW_JOINT].astype(np.float32)
        jaw_idx = np.flatnonzero(jaw_w != 0)
        f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        self.register_buffer("v_template", f32(m.v_template + offset))  # (V, 3)
        self.register_buffer("dirs", f32(dirs))  # (K + 10, V*3)
        self.register_buffer("jaw_joint", f32(jreg[JAW_JOINT] @ m.v_template + offset))  # (3,)
        self.register_buffer("jaw_joint_dirs", f32(np.einsum("v,vck->kc", jreg[JAW_JOINT], active)))  # (K, 3)
        self.register_buffer("jaw_idx", torch.from_numpy(jaw_idx.astype(np.int64)))  # (Vj,)
        self.register_buffer("jaw_weights", f32(jaw_w[jaw_idx, None]))  # (Vj, 1)
        lmk_vertices = m.faces[m.lmk_faces]  # (68, 3)
        self.register_buffer("lmk_vertices", torch.from_numpy(lmk_vertices.astype(np.int64)))
        self.register_buffer("lmk_bary", f32(m.lmk_bary))  # (68, 3)
        self.register_buffer("faces", torch.from_numpy(m.faces.astype(np.int64)))  # (F, 3)
        # for the general pose (posed()): the full model's pose-dependent constants
        self.register_buffer("posedirs", f32(m.posedirs))  # (V, 3, 36)
        self.register_buffer("J_regressor", f32(jreg))  # (5, V)
        self.register_buffer("parents", torch.from_numpy(m.kintree_table[0].astype(np.int64)))
        self.register_buffer("weights", f32(m.weights))  # (V, 5)

    @property
    def n_vertices(self) -> int:
        return self.v_template.shape[0]

    def _coeffs(self, shape: Tensor, expression: Tensor) -> Tensor:
        return torch.cat([shape[:, : self.n_shape], expression[:, : self.n_expr]], dim=1)

    def forward(self, shape: Tensor, expression: Tensor, jaw: Tensor) -> Tensor:
        """shape: (B, >= n_shape); expression: (B, >= n_expr); jaw: (B, 3) axis-angle -> (B, V, 3).

        The vertices include the paper's +0.05 on z. They are computed in the layer's own dtype (float32
        unless the module was cast), with autocast off: under AMP the matrix products would be float16 and
        the jaw's in-place add would mix dtypes.
        """
        dtype = self.dirs.dtype
        with torch.autocast(jaw.device.type, enabled=False):
            return self._forward(shape.to(dtype), expression.to(dtype), jaw.to(dtype))

    def _forward(self, shape: Tensor, expression: Tensor, jaw: Tensor) -> Tensor:
        B = jaw.shape[0]
        rot = batch_rodrigues(jaw)  # (B, 3, 3)
        rot_minus_i = rot - torch.eye(3, dtype=rot.dtype, device=rot.device)
        betas = self._coeffs(shape, expression)  # (B, K)
        ones = torch.ones(B, 1, dtype=betas.dtype, device=betas.device)
        coeffs = torch.cat([betas, rot_minus_i.flatten(1), ones], dim=1)  # (B, K + 10)
        verts = torch.mm(coeffs, self.dirs).view(B, -1, 3)
        joint = torch.addmm(self.jaw_joint.view(1, 3), betas, self.jaw_joint_dirs)  # (B, 3)
        # jaw skinning: v + w * (R - I)(v - j); every other joint is at rest
        moved = verts.index_select(1, self.jaw_idx) - joint[:, None]  # (B, Vj, 3)
        delta = torch.bmm(moved, rot_minus_i.transpose(1, 2)) * self.jaw_weights
        return verts.index_add_(1, self.jaw_idx, delta)  # in place: addmm's backward does not need its output

    def posed(self, shape: Tensor, expression: Tensor, pose: Tensor) -> Tensor:
        """Full LBS with any pose: pose (B, 15) axis-angle (global, neck, jaw, eyes) -> (B, V, 3), +0.05 on z."""
        V = self.n_vertices
        K = self.n_shape + self.n_expr
        shapedirs = self.dirs[:K].T.reshape(V, 3, K)
        offset = self.v_template.new_tensor([0.0, 0.0, CANONICAL_Z_OFFSET])
        verts, _ = lbs(
            self._coeffs(shape, expression),
            pose,
            self.v_template - offset,
            shapedirs,
            self.posedirs,
            self.J_regressor,
            self.parents,
            self.weights,
        )
        return verts + offset
