"""The ``detections`` table the ``detect_heads`` stage writes, read back per image."""

from __future__ import annotations

import numpy as np


def detections_by_sample(table) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A ``detections`` table (one row per head: sample_id, head, box, score) -> per sample id its
    boxes ``(N, 4)`` xyxy and scores ``(N,)``, in head order."""
    cols = table.to_pydict()
    grouped: dict[str, list] = {}
    for sid, head, box, score in zip(cols["sample_id"], cols["head"], cols["box"], cols["score"]):
        grouped.setdefault(sid, []).append((head, box, score))
    out = {}
    for sid, items in grouped.items():
        items.sort(key=lambda t: t[0])
        out[sid] = (
            np.asarray([t[1] for t in items], dtype=np.float64).reshape(-1, 4),
            np.asarray([t[2] for t in items], dtype=np.float64),
        )
    return out
