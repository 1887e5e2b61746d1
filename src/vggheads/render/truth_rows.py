"""The exact truth of one rendered head and its rows of the ``render_heads`` table.

:class:`HeadTruth` is what the procedural scene
(:class:`vggheads.render.procedural.ProceduralRenderer`) knows of each head it drew;
:func:`head_rows` turns an image's heads into ``render_heads`` rows, for the ``procedural``
backend, the ``sdxl`` head-mesh renders and detection's procedural shards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class HeadTruth:
    person: int
    params: np.ndarray  # (413,) float32
    box: np.ndarray  # (4,) x1, y1, x2, y2 in canvas pixels
    landmarks: np.ndarray  # (68, 3) x, y, visibility
    yaw: float
    pitch: float
    roll: float
    visible_fraction: float
    visible_pixels: int  # at the supersampled resolution
    instance: int  # its id in the rasteriser's instance buffer


def head_rows(sample_id: str, heads: list[HeadTruth]) -> list[dict]:
    """Rows of the ``render_heads`` table for one image's truth (also written by ``sdxl`` head-mesh renders)."""
    return [
        {
            "sample_id": sample_id,
            "head": h.person,
            "box": h.box,
            "flame_params": h.params,
            "landmarks": h.landmarks,
            "yaw": h.yaw,
            "pitch": h.pitch,
            "roll": h.roll,
            "visible_fraction": h.visible_fraction,
        }
        for h in heads
    ]
