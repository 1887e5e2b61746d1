"""Overlay pictures of detections (boxes with scores, 68 landmarks, the mesh, pose axes) with
:mod:`vggheads.viz`; small images are enlarged so the drawing stays readable."""

from __future__ import annotations

import numpy as np

from ..core.param_layout import SCALE_INDEX

MIN_SIDE = 480  # images smaller than this are enlarged (nearest neighbour) before drawing


def overlay(
    image: np.ndarray,
    heads: list,
    faces: np.ndarray | None = None,
    what: tuple[str, ...] = ("box", "landmarks", "mesh", "axes"),
    min_side: int = MIN_SIDE,
) -> np.ndarray:
    """A copy of RGB ``image`` with every :class:`~vggheads.model.inference.DetectedHead` drawn."""
    from .. import viz

    factor = max(1, int(np.ceil(min_side / max(1, min(image.shape[:2])))))
    canvas = viz.upscale(np.ascontiguousarray(image), factor)
    for i, h in enumerate(heads):
        viz.draw_head(
            canvas,
            i,
            box=h.box,
            landmarks=np.concatenate([h.landmarks[:, :2], np.ones((68, 1))], 1),
            vertices=h.vertices,
            faces=faces,
            R=h.rotation,
            scale=float(h.flame_params[SCALE_INDEX]),
            label=f"{h.score:.2f}",
            what=what,
            factor=factor,
        )
    return canvas


def ground_truth_overlay(
    image: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray, min_side: int = MIN_SIDE
) -> np.ndarray:
    """A copy of ``image`` with ground-truth boxes and landmarks (visibility in column 3) drawn."""
    from .. import viz

    factor = max(1, int(np.ceil(min_side / max(1, min(image.shape[:2])))))
    canvas = viz.upscale(np.ascontiguousarray(image), factor)
    for i, (box, lm) in enumerate(zip(boxes, landmarks)):
        viz.draw_head(canvas, i, box=box, landmarks=lm, what=("box", "landmarks"), factor=factor)
    return canvas
