"""Validation metrics of the paper (section 4) during training: NME over the head vertices after
Hungarian matching at IoU >= 0.5, the failure rate (NME > 5 %), the same NME over the 68 landmarks,
and the 68-landmark NME at the best anchor in each ground-truth box.

Matching, NME (percent of sqrt(w h) of the ground-truth box) and the failure threshold are the
project's one definition, :mod:`vggheads.core.metrics`.
"""

from __future__ import annotations

import numpy as np

from ..core.metrics import failure_rate


def summarise(nmes: list[float], nmes68: list[float], n_gt: int, nmes68_anchor: list[float]) -> dict[str, float]:
    """NME (head vertices, percent), FR (fraction of matched heads with NME > 5 %), NME over the 68
    landmarks (percent), the fraction of ground-truth heads matched, and the 68-landmark NME
    (percent) of the best-scoring anchor inside each ground-truth box.

    The last one needs no detection: it measures the 3D regression where the head is, so an
    untrained network has a value to compare with (its detections rarely reach IoU 0.5).
    """
    arr = np.asarray(nmes, dtype=np.float64)
    arr68 = np.asarray(nmes68, dtype=np.float64)
    anchor = np.asarray(nmes68_anchor, dtype=np.float64)
    return {
        "nme": float(arr.mean()) if arr.size else float("nan"),
        "fr": failure_rate(arr),
        "nme68": float(arr68.mean()) if arr68.size else float("nan"),
        "matched": float(arr.size / n_gt) if n_gt else float("nan"),
        "nme68_anchor": float(anchor.mean()) if anchor.size else float("nan"),
    }
