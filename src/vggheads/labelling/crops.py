"""Head crops extended by a share of the box per side, as the paper's ``extend_bbox`` +
``ensure_bbox_boundaries`` (data_generator/mesh_dataset.py)."""

from __future__ import annotations

import numpy as np


def extend_box(box, extension: float, width: int, height: int) -> np.ndarray:
    """Extend an xyxy box by ``extension`` x its size on every side, clip to the image -> xyxy.

    Like the paper, the extended box is cast to integer pixels (truncation of the xywh values)
    before clipping, so crops and the ``extended_bbox`` of the release agree to the pixel.
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    w, h = x2 - x1, y2 - y1
    ex, ey, ew, eh = np.array(
        [x1 - w * extension, y1 - h * extension, w * (1 + 2 * extension), h * (1 + 2 * extension)]
    ).astype(np.int32)
    cx1, cy1 = min(max(0, ex), width), min(max(0, ey), height)
    cx2, cy2 = min(max(0, ex + ew), width), min(max(0, ey + eh), height)
    return np.array([cx1, cy1, cx2, cy2], dtype=np.float32)


def extend_boxes(boxes, extension: float, width: int, height: int) -> np.ndarray:
    """(N, 4) xyxy -> (N, 4) extended and clipped (see :func:`extend_box`)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.array([extend_box(b, extension, width, height) for b in boxes], dtype=np.float32).reshape(-1, 4)


def crop(image: np.ndarray, box) -> np.ndarray:
    """The pixels of ``image`` inside an integer xyxy ``box`` (a view)."""
    x1, y1, x2, y2 = (int(v) for v in np.asarray(box).reshape(4))
    return image[y1:y2, x1:x2]
