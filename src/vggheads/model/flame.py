"""The head-model side of the detector: active parameters -> the 413-vector, and the cached decoding
geometry the loss, the validator and inference share (the similarity maps of parameter vectors are
:mod:`vggheads.core.similarity`).

The network predicts ``n_shape + n_expr + 13`` values per anchor (the paper's L model predicts
128 shape and 64 expression components); :func:`pad_params` inserts the zeros that make them the
paper's 413-vector.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.param_layout import EXPRESSION, JAW, N_EXPR, N_PARAMS, N_SHAPE, SHAPE


def pad_params(active: Tensor, n_shape: int, n_expr: int) -> Tensor:
    """Active predictions ``(..., n_shape + n_expr + 13)`` -> the 413-vector ``(..., 413)`` (zeros elsewhere)."""
    out = active.new_zeros(*active.shape[:-1], N_PARAMS)
    out[..., :n_shape] = active[..., :n_shape]
    out[..., EXPRESSION.start : EXPRESSION.start + n_expr] = active[..., n_shape : n_shape + n_expr]
    out[..., JAW.start :] = active[..., n_shape + n_expr :]
    return out


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
    head_idx: Tensor  # (Vh,) long
    face_idx: Tensor  # (Vf,) long
    centre: Tensor  # (3,)
    extent: Tensor  # () the template head subset's largest side
    faces: np.ndarray  # (F, 3) triangles, for drawing

    def canonical(self, params: Tensor, full: bool = False) -> Tensor:
        """(N, 413) -> (N, V, 3) canonical vertices (+0.05 z)."""
        layer = self.full if full else self.active
        return layer(params[:, SHAPE], params[:, EXPRESSION], params[:, JAW])

    def normalise(self, vertices: Tensor) -> Tensor:
        return (vertices - self.centre) / self.extent


_CACHE: dict[tuple, HeadGeometry] = {}
_FULL: dict[tuple, tuple] = {}  # (path, device) -> (HeadModel, full FlameLayer): shared by every component count
_LOCK = threading.Lock()


def head_geometry(
    head_model: str | Path, n_shape: int = N_SHAPE, n_expr: int = N_EXPR, device: str | torch.device = "cpu"
) -> HeadGeometry:
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
                active=active.requires_grad_(False),
                full=full.requires_grad_(False),
                head_idx=head_idx,
                face_idx=torch.as_tensor(model.subsets["face"], dtype=torch.long, device=device),
                centre=(lo + hi) / 2,
                extent=(hi - lo).max(),
                faces=np.asarray(model.faces),
            )
        return _CACHE[key]
