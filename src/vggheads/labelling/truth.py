"""Labeller ``truth``: procedural renders carry their exact parameters; match detections to them.

Each detection takes the parameters and landmarks of the truth head it overlaps most (one-to-one
Hungarian matching on box IoU, pairs below ``match_iou`` dropped). A detection with no truth head
(a false positive) gets no label and is counted as ``no_truth_match``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import HeadLabels


@dataclass
class TruthHeads:
    """The truth heads of one image."""

    boxes: np.ndarray  # (G, 4) xyxy, the full visible head box
    params: np.ndarray  # (G, 413)
    landmarks: np.ndarray  # (G, 68, 3) x, y, visibility
    angles: np.ndarray  # (G, 3) yaw, pitch, roll degrees


def truth_by_sample(heads_table) -> dict[str, TruthHeads]:
    """Group a ``render_heads`` table (pyarrow) by sample id."""
    cols = heads_table.to_pydict() if heads_table.num_rows else {}
    grouped: dict[str, list[int]] = {}
    for i, sid in enumerate(cols.get("sample_id", [])):
        grouped.setdefault(sid, []).append(i)
    out = {}
    for sid, idx in grouped.items():
        out[sid] = TruthHeads(
            boxes=np.asarray([cols["box"][i] for i in idx], dtype=np.float64).reshape(-1, 4),
            params=np.asarray([cols["flame_params"][i] for i in idx], dtype=np.float32).reshape(-1, 413),
            landmarks=np.asarray([cols["landmarks"][i] for i in idx], dtype=np.float32).reshape(-1, 68, 3),
            angles=np.asarray(
                [[cols["yaw"][i], cols["pitch"][i], cols["roll"][i]] for i in idx], dtype=np.float64
            ).reshape(-1, 3),
        )
    return out


class TruthLabeller:
    """Exact labels for procedural renders (see the module docstring).

    Example::

        labeller = TruthLabeller(truth_by_sample(read_table(heads_path, "render_heads")))
        labels = labeller(image, "00000_000003", boxes, extended)
    """

    name = "truth"

    def __init__(self, truth: dict[str, TruthHeads], match_iou: float = 0.5):
        self.truth = truth
        self.match_iou = float(match_iou)

    def __call__(self, image, sample_id: str, boxes: np.ndarray, extended: np.ndarray) -> HeadLabels:
        from ..core.metrics import match_hungarian

        n = len(boxes)
        labels = HeadLabels.empty(n, "no_truth_match")
        labels.landmarks = np.full((n, 68, 3), np.nan, dtype=np.float32)
        truth = self.truth.get(sample_id)
        if truth is None or n == 0:
            return labels
        for g, d, _ in match_hungarian(truth.boxes, boxes, self.match_iou):
            labels.params[d] = truth.params[g]
            labels.landmarks[d] = truth.landmarks[g]
            labels.ok[d] = True
            labels.reasons[d] = ""
        return labels
