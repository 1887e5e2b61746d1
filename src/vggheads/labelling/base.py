"""What every labeller returns, and the decoding shared by all of them (landmarks, pose)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..core.param_layout import N_PARAMS


@dataclass
class HeadLabels:
    """Labels of the N heads of one image, in the order of the boxes given to the labeller."""

    params: np.ndarray  # (N, 413) float32, image-pixel convention v_img = s * (R v) + t
    ok: np.ndarray  # (N,) bool: False where the labeller could not label the head
    reasons: list[str] = field(default_factory=list)  # per head: "" when ok, else why not (a stats key)
    landmarks: np.ndarray | None = None  # (N, 68, 3) x, y, visibility when the labeller knows them exactly

    @classmethod
    def empty(cls, n: int, reason: str) -> "HeadLabels":
        return cls(np.full((n, N_PARAMS), np.nan, dtype=np.float32), np.zeros(n, dtype=bool), [reason] * n)


class Labeller(Protocol):
    """``labeller(image, sample_id, boxes, extended) -> HeadLabels``.

    image: RGB uint8 (H, W, 3); boxes: (N, 4) xyxy detections; extended: (N, 4) xyxy integer
    crops (the boxes extended by 25 % per side, clipped).
    """

    name: str

    def __call__(self, image: np.ndarray, sample_id: str, boxes: np.ndarray, extended: np.ndarray) -> HeadLabels: ...


@dataclass
class Decoded:
    landmarks: np.ndarray  # (N, 68, 3) x, y pixels and visibility (1 = the landmark's triangle faces the camera)
    yaw: np.ndarray  # (N,) degrees
    pitch: np.ndarray
    roll: np.ndarray


def decode_labels(params: np.ndarray, layer, batch_size: int = 256) -> Decoded:
    """Landmarks and pose of (N, 413) image-pixel parameter vectors through a ``FlameLayer``.

    Visibility is self-occlusion only: a landmark is visible when its triangle faces the camera
    (occlusion by other heads is unknown to a labeller).
    """
    import torch

    from ..geometry import decode

    params = np.asarray(params, dtype=np.float32).reshape(-1, N_PARAMS)
    n = len(params)
    lms = np.zeros((n, 68, 3), dtype=np.float32)
    yaw, pitch, roll = (np.zeros(n, dtype=np.float32) for _ in range(3))
    tri = layer.lmk_vertices
    with torch.no_grad():
        for start in range(0, n, batch_size):
            p = torch.from_numpy(params[start : start + batch_size])
            dec = decode(p, layer)
            v = dec.vertices_image
            corners = v[:, tri]  # (B, 68, 3, 3)
            normal_z = torch.linalg.cross(
                corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1
            )[..., 2]
            sl = slice(start, start + len(p))
            lms[sl, :, :2] = dec.landmarks_image[..., :2].numpy()
            lms[sl, :, 2] = (normal_z < 0).float().numpy()
            yaw[sl], pitch[sl], roll[sl] = dec.yaw.numpy(), dec.pitch.numpy(), dec.roll.numpy()
    return Decoded(lms, yaw, pitch, roll)
