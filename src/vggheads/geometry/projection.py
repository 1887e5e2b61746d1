"""From a parameter vector to image-space vertices, landmarks and pose angles (paper section 2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .params import split_params
from .rotations import matrix_to_angles, rot6d_to_matrix


def project(vertices: Tensor, R: Tensor, translation: Tensor, scale: Tensor) -> Tensor:
    """The paper's projection ``v_img = s * (R v) + t``.

    vertices: (B, V, 3) canonical; R: (B, 3, 3); translation: (B, 3); scale: (B,) or (B, 1)
    -> (B, V, 3) with x right and y down in pixels, z kept as depth (away from the camera); the
    result may be a transposed view (call ``.contiguous()`` before ``.view``).
    """
    sR = R * scale.reshape(-1, 1, 1)
    # (sR) @ v^T as one GEMM per head with the V axis long (a (V, 3) @ (3, 3) product is slow on CPUs);
    # the result is a transposed view, (B, V, 3) in shape
    out = torch.bmm(sR, vertices.transpose(1, 2)) + translation[:, :, None]  # (B, 3, V)
    return out.transpose(1, 2)


def _landmark_embedding(embedding) -> tuple[Tensor, Tensor]:
    """(vertex ids (68, 3) long, barycentric (68, 3)) from a HeadModel, FlameLayer or tuple."""
    if hasattr(embedding, "lmk_vertices"):  # FlameLayer
        return embedding.lmk_vertices, embedding.lmk_bary
    if hasattr(embedding, "lmk_faces"):  # HeadModel
        return (torch.as_tensor(embedding.faces[embedding.lmk_faces]).long(), torch.as_tensor(embedding.lmk_bary))
    ids, bary, *faces = embedding
    ids = torch.as_tensor(ids).long()
    if ids.ndim == 1:  # (lmk_faces, lmk_bary, faces)
        if not faces:
            raise ValueError(
                "landmarks(): a (lmk_faces, lmk_bary) pair needs the faces too: pass (lmk_faces, lmk_bary, faces)"
            )
        ids = torch.as_tensor(faces[0]).long()[ids]
    return ids, torch.as_tensor(bary)


def landmarks(vertices: Tensor, embedding) -> Tensor:
    """Landmarks as barycentric points of mesh triangles.

    vertices: (B, V, 3); embedding: a HeadModel, a FlameLayer, ``(lmk_faces (L,), lmk_bary (L, 3), faces (F, 3))``
    or ``(lmk_vertex_ids (L, 3), lmk_bary (L, 3))`` -> (B, L, 3) (L = 68 in iBUG order).
    """
    ids, bary = _landmark_embedding(embedding)
    ids, bary = ids.to(vertices.device), bary.to(vertices)
    corners = vertices[:, ids]  # (B, L, 3 corners, 3)
    # out[b, l, c] = sum_k bary[l, k] * corners[b, l, k, c]
    return torch.einsum("blkc,lk->blc", corners, bary)


@dataclass
class DecodedHeads:
    """Everything a parameter batch says about its heads; B heads, V vertices."""

    vertices_canonical: Tensor  # (B, V, 3) model frame (y up, z out of the face), +0.05 on z
    vertices_image: Tensor  # (B, V, 3) pixels (x right, y down) + depth
    landmarks_image: Tensor  # (B, 68, 3) pixels + depth, iBUG order
    R: Tensor  # (B, 3, 3) model frame -> image frame
    yaw: Tensor  # (B,) degrees
    pitch: Tensor  # (B,) degrees
    roll: Tensor  # (B,) degrees


def decode(params: Tensor, layer) -> DecodedHeads:
    """Decode a batch of 413-value vectors: params (B, 413), layer a FlameLayer -> DecodedHeads."""
    p = split_params(params)
    canonical = layer(p.shape, p.expression, p.jaw)
    R = rot6d_to_matrix(p.rot6d)
    image = project(canonical, R, p.translation, p.scale)
    yaw, pitch, roll = matrix_to_angles(R)
    return DecodedHeads(
        vertices_canonical=canonical,
        vertices_image=image,
        landmarks_image=landmarks(image, layer),
        R=R,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
    )
