"""The 413-value head parameter vector cut into its named parts and joined back (torch or numpy).

The layout itself (sizes and slices) is :mod:`vggheads.core.param_layout`, torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

# re-exported: the layout's names are importable from here too
from ..core.param_layout import EXPRESSION, JAW, LAYOUT, N_EXPR, N_JAW, N_PARAMS, N_ROT6D  # noqa: F401
from ..core.param_layout import N_SCALE, N_SHAPE, N_TRANSLATION, ROT6D, SCALE, SHAPE, TRANSLATION  # noqa: F401


@dataclass
class FlameParams:
    """The parts of a parameter vector; each ``(..., n)`` (torch tensors or numpy arrays).

    ``scale`` keeps its trailing axis of size 1 so that ``join_params(split_params(p))`` is ``p``.
    """

    shape: Any  # (..., 300)
    expression: Any  # (..., 100)
    jaw: Any  # (..., 3) axis-angle of the jaw joint
    rot6d: Any  # (..., 6) first two columns of R, see geometry.rotations.rot6d_to_matrix
    translation: Any  # (..., 3) image pixels (x right, y down) and depth
    scale: Any  # (..., 1) pixels per model unit


def split_params(params) -> FlameParams:
    """Cut ``params (..., 413)`` (torch or numpy) into its named parts (views, no copy)."""
    if params.shape[-1] != N_PARAMS:
        raise ValueError(
            f"expected a parameter vector of {N_PARAMS} values in the last axis, got shape {tuple(params.shape)}"
        )
    return FlameParams(**{name: params[..., sl] for name, sl in LAYOUT.items()})


def join_params(parts: FlameParams):
    """Concatenate the parts back into ``(..., 413)``; the inverse of :func:`split_params`.

    Parts may be torch tensors or numpy arrays (all of one kind); ``scale`` may also lack its
    trailing axis of size 1.
    """
    values = []
    for f in fields(FlameParams):
        value = getattr(parts, f.name)
        width = LAYOUT[f.name].stop - LAYOUT[f.name].start
        if f.name == "scale" and (value.ndim == 0 or value.shape[-1] != 1):
            value = value[..., None]
        if value.shape[-1] != width:
            raise ValueError(
                f"parameter part '{f.name}' must have {width} values in its last axis, got {tuple(value.shape)}"
            )
        values.append(value)
    if isinstance(values[0], torch.Tensor):
        batch = torch.broadcast_shapes(*(v.shape[:-1] for v in values))
        return torch.cat([v.expand(*batch, v.shape[-1]) for v in values], dim=-1)
    batch = np.broadcast_shapes(*(np.shape(v)[:-1] for v in values))
    return np.concatenate([np.broadcast_to(v, (*batch, v.shape[-1])) for v in values], axis=-1)
