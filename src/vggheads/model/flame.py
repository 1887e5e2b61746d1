"""The head-model side of the detector: active parameters -> the 413-vector, similarity transforms of
parameter vectors, and the cached decoding geometry the loss, the validator and inference share.

The network predicts ``n_shape + n_expr + 13`` values per anchor (the paper's L model predicts
128 shape and 64 expression components); :func:`pad_params` inserts the zeros that make them the
paper's 413-vector. A 2D similarity of the image (letterbox, affine augmentation, un-letterbox)
maps a parameter vector exactly: ``v_img = s R v + t`` becomes ``k s (Rz R) v + (A t + b)``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.param_layout import EXPRESSION, JAW, N_EXPR, N_PARAMS, N_SHAPE, ROT6D, SCALE, SHAPE, TRANSLATION


def pad_params(active: Tensor, n_shape: int, n_expr: int) -> Tensor:
    """Active predictions ``(..., n_shape + n_expr + 13)`` -> the 413-vector ``(..., 413)`` (zeros elsewhere)."""
    out = active.new_zeros(*active.shape[:-1], N_PARAMS)
    out[..., :n_shape] = active[..., :n_shape]
    out[..., EXPRESSION.start:EXPRESSION.start + n_expr] = active[..., n_shape:n_shape + n_expr]
    out[..., JAW.start:] = active[..., n_shape + n_expr:]
    return out


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
    from ..geometry.rotations import matrix_to_rot6d, rot6d_to_matrix

    params = np.asarray(params, dtype=np.float64).reshape(-1, N_PARAMS)
    out = params.copy()
    if not len(params):
        return out.astype(np.float32)
    k, theta = similarity_parts(A)
    c, s = np.cos(theta), np.sin(theta)
    rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    R = rot6d_to_matrix(torch.from_numpy(params[:, ROT6D])).numpy()
    out[:, ROT6D] = matrix_to_rot6d(torch.from_numpy(rz @ R)).numpy()
    t = params[:, TRANSLATION]
    out[:, TRANSLATION.start:TRANSLATION.start + 2] = t[:, :2] @ np.asarray(A, np.float64).T + np.asarray(b, np.float64)
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
    corners = boxes[:, [[0, 1], [2, 1], [2, 3], [0, 3]]]                 # (N, 4, 2)
    mapped = transform_points(corners, A, b)
    return np.concatenate([mapped.min(1), mapped.max(1)], axis=1)


@dataclass
class HeadGeometry:
    """Decoding constants of one head model, on one device (built once per process, see :func:`head_geometry`).

    ``active``: a FlameLayer with the network's ``n_shape``/``n_expr`` components (cheap per anchor);
    ``full``: all 300/100 (for ground-truth vectors); ``head_idx``: the paper's head vertex subset
    (no ears, eyes, neck) used by the losses and NME; ``centre``/``extent``: the unit-cube
    normalisation of canonical vertices (from the template's head subset).
    """

    active: torch.nn.Module
    full: torch.nn.Module
    head_idx: Tensor      # (Vh,) long
    face_idx: Tensor      # (Vf,) long
    centre: Tensor        # (3,)
    extent: Tensor        # () the template head subset's largest side
    faces: np.ndarray     # (F, 3) triangles, for drawing

    def canonical(self, params: Tensor, full: bool = False) -> Tensor:
        """(N, 413) -> (N, V, 3) canonical vertices (+0.05 z)."""
        layer = self.full if full else self.active
        return layer(params[:, SHAPE], params[:, EXPRESSION], params[:, JAW])

    def normalise(self, vertices: Tensor) -> Tensor:
        return (vertices - self.centre) / self.extent


_CACHE: dict[tuple, HeadGeometry] = {}
_FULL: dict[tuple, tuple] = {}   # (path, device) -> (HeadModel, full FlameLayer): shared by every component count
_LOCK = threading.Lock()


def head_geometry(head_model: str | Path, n_shape: int = N_SHAPE, n_expr: int = N_EXPR,
                  device: str | torch.device = "cpu") -> HeadGeometry:
    """The decoding geometry of ``head_model`` (a path), cached per (path, counts, device)."""
    from ..geometry import FlameLayer
    from ..headmodel.format import load_head_model

    device = torch.device(device)
    key = (str(Path(head_model).resolve()), int(n_shape), int(n_expr), str(device))
    with _LOCK:
        if key not in _CACHE:
            if (key[0], key[3]) not in _FULL:
                model = load_head_model(head_model)
                _FULL[key[0], key[3]] = model, FlameLayer(model).to(device)
            model, full = _FULL[key[0], key[3]]
            active = full if (n_shape, n_expr) == (N_SHAPE, N_EXPR) else FlameLayer(model, n_shape, n_expr).to(device)
            head_idx = torch.as_tensor(model.subsets["head"], dtype=torch.long, device=device)
            tmpl = full.v_template[head_idx]
            lo, hi = tmpl.min(0).values, tmpl.max(0).values
            _CACHE[key] = HeadGeometry(
                active=active.requires_grad_(False), full=full.requires_grad_(False), head_idx=head_idx,
                face_idx=torch.as_tensor(model.subsets["face"], dtype=torch.long, device=device),
                centre=(lo + hi) / 2, extent=(hi - lo).max(), faces=np.asarray(model.faces))
        return _CACHE[key]
