"""Linear blend skinning as small pure functions (FLAME's model, smplx's conventions).

B = batch, V = vertices, K = blend-shape coefficients, J = joints (5 for FLAME: root, neck, jaw,
left eye, right eye), P = 9 * (J - 1) pose-corrective features. ``lbs`` matches
``smplx.lbs.lbs`` (tested to 1e-5) and is the reference; ``FlameLayer`` is a faster special
case for the canonical head (only the jaw rotates).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .rotations import batch_rodrigues


def blend_shapes(coeffs: Tensor, dirs: Tensor) -> Tensor:
    """Per-vertex displacements of linear blend shapes.

    coeffs: (B, K); dirs: (V, 3, K) (FLAME layout) -> (B, V, 3).
    """
    # out[b, v, c] = sum_k coeffs[b, k] * dirs[v, c, k]
    return torch.einsum("bk,vck->bvc", coeffs, dirs)


def vertices2joints(J_regressor: Tensor, vertices: Tensor) -> Tensor:
    """Joint locations regressed from vertices.

    J_regressor: (J, V); vertices: (B, V, 3) -> (B, J, 3).
    """
    # out[b, j, c] = sum_v J_regressor[j, v] * vertices[b, v, c]
    return torch.einsum("jv,bvc->bjc", J_regressor, vertices)


def pose_features(rot_mats: Tensor) -> Tensor:
    """Pose-corrective features: ``R_j - I`` of every joint but the root, flattened.

    rot_mats: (B, J, 3, 3) -> (B, 9 * (J - 1)).
    """
    ident = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - ident).flatten(1)


def pose_offsets(features: Tensor, posedirs: Tensor) -> Tensor:
    """Per-vertex pose-corrective displacements.

    features: (B, P); posedirs: (V, 3, P) (FLAME layout) -> (B, V, 3).
    """
    # out[b, v, c] = sum_p features[b, p] * posedirs[v, c, p]
    return torch.einsum("bp,vcp->bvc", features, posedirs)


def transform_mat(R: Tensor, t: Tensor) -> Tensor:
    """Homogeneous transforms from rotations (N, 3, 3) and translations (N, 3, 1) -> (N, 4, 4)."""
    return torch.cat([F.pad(R, [0, 0, 0, 1]), F.pad(t, [0, 0, 0, 1], value=1.0)], dim=2)


def batch_rigid_transform(rot_mats: Tensor, joints: Tensor, parents: Tensor) -> tuple[Tensor, Tensor]:
    """Chain the joint rotations along the kinematic tree.

    rot_mats: (B, J, 3, 3) local rotations; joints: (B, J, 3) rest locations; parents: (J,) with
    ``parents[0] = -1`` and ``parents[j] < j``.
    Returns posed joints (B, J, 3) and the skinning transforms (B, J, 4, 4) that map a rest-pose
    point to its posed location for a vertex bound fully to that joint.
    """
    B, J = joints.shape[:2]
    rel = joints.clone()
    rel[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    local = transform_mat(rot_mats.reshape(-1, 3, 3), rel.reshape(-1, 3, 1)).reshape(B, J, 4, 4)
    chain = [local[:, 0]]
    for j in range(1, J):
        chain.append(chain[int(parents[j])] @ local[:, j])
    world = torch.stack(chain, dim=1)  # (B, J, 4, 4)
    posed_joints = world[:, :, :3, 3]
    # subtract the transformed rest joint so the transform acts on rest-pose coordinates
    moved_rest = world[:, :, :3, :3] @ joints[..., None]  # (B, J, 3, 1)
    skinning = world.clone()
    skinning[:, :, :3, 3] = world[:, :, :3, 3] - moved_rest[..., 0]
    return posed_joints, skinning


def skin(vertices: Tensor, weights: Tensor, transforms: Tensor) -> Tensor:
    """Blend per-joint transforms by the skinning weights and apply them.

    vertices: (B, V, 3) rest pose; weights: (V, J); transforms: (B, J, 4, 4) -> (B, V, 3).
    """
    # T[b, v] = sum_j weights[v, j] * transforms[b, j]
    T = torch.einsum("vj,bjmn->bvmn", weights, transforms)  # (B, V, 4, 4)
    return (T[..., :3, :3] @ vertices[..., None])[..., 0] + T[..., :3, 3]


def lbs(
    betas: Tensor,
    pose: Tensor,
    v_template: Tensor,
    shapedirs: Tensor,
    posedirs: Tensor,
    J_regressor: Tensor,
    parents: Tensor,
    weights: Tensor,
) -> tuple[Tensor, Tensor]:
    """FLAME linear blend skinning.

    betas: (B, K) blend-shape coefficients (FLAME: [shape, expression]); pose: (B, 3 * J)
    axis-angle per joint (FLAME: global, neck, jaw, left eye, right eye); v_template: (V, 3);
    shapedirs: (V, 3, K); posedirs: (V, 3, 9 * (J - 1)); J_regressor: (J, V); parents: (J,);
    weights: (V, J).
    Returns vertices (B, V, 3) and posed joints (B, J, 3).
    """
    B = max(betas.shape[0], pose.shape[0])
    v_shaped = v_template + blend_shapes(betas, shapedirs)
    joints = vertices2joints(J_regressor, v_shaped)
    rot_mats = batch_rodrigues(pose.reshape(-1, 3)).reshape(B, -1, 3, 3)
    v_posed = v_shaped + pose_offsets(pose_features(rot_mats), posedirs)
    posed_joints, transforms = batch_rigid_transform(rot_mats, joints, parents)
    return skin(v_posed, weights, transforms), posed_joints
