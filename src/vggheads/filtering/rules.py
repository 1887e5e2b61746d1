"""The paper's four filtering rules as functions of head boxes and a detector.

``detect`` is any callable from a list of RGB images to a list of ``Detections`` (boxes xyxy,
scores), e.g. :class:`vggheads.detection.infer.HeadBoxDetector`; ``find_faces`` any callable from
an RGB image to (F, 4) xyxy face boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

REASONS = (
    "unreadable",
    "no_heads",
    "flip_count",
    "face_without_head",
    "split_count",
    "agreement",
)  # agreement: .agreement
RULES = ("no_heads", "flip", "face", "split")


def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Boxes found on the horizontally flipped image, mapped back to the original's frame."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], axis=1)


def flip_stability(boxes: np.ndarray, flipped_back: np.ndarray) -> float:
    """The paper's unthresholded stability score: mean over the boxes of their best IoU with a box
    found on the flipped image (1 = identical detections; NaN without boxes)."""
    from ..core.boxes import iou_matrix

    if len(boxes) == 0:
        return float("nan")
    if len(flipped_back) == 0:
        return 0.0
    return float(iou_matrix(boxes, flipped_back).max(axis=1).mean())


def vertical_split(width: int, boxes: np.ndarray) -> int | None:
    """The paper's ``find_vertical_split``: the integer x nearest ``width // 2`` (left candidate
    first) that lies strictly inside no box; None when every column cuts a box."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    centre = width // 2
    cuts = lambda x: bool(np.any((b[:, 0] < x) & (x < b[:, 2])))
    for offset in range(centre + 1):
        left, right = centre - offset, centre + offset
        if not cuts(left):
            return left
        if not cuts(right):
            return right
    return None


def split_is_valid(width: int, height: int, boxes: np.ndarray, split: int | None, min_side: int = 10) -> bool:
    """The paper's ``_valid_split``: both halves at least ``min_side`` pixels, a box wholly on each side."""
    if split is None or split < min_side or width - split < min_side or height < min_side:
        return False
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return bool(np.any(b[:, 2] < split) and np.any(b[:, 0] > split))


def faces_without_head(faces: np.ndarray, heads: np.ndarray) -> int:
    """How many face boxes overlap (positive intersection area) no head box."""
    faces = np.asarray(faces, dtype=np.float64).reshape(-1, 4)
    heads = np.asarray(heads, dtype=np.float64).reshape(-1, 4)
    if len(faces) == 0:
        return 0
    if len(heads) == 0:
        return len(faces)
    iw = np.minimum(faces[:, None, 2], heads[None, :, 2]) - np.maximum(faces[:, None, 0], heads[None, :, 0])
    ih = np.minimum(faces[:, None, 3], heads[None, :, 3]) - np.maximum(faces[:, None, 1], heads[None, :, 1])
    overlap = (np.clip(iw, 0, None) * np.clip(ih, 0, None)) > 0
    return int((~overlap.any(axis=1)).sum())


@dataclass
class FilterResult:
    keep: bool
    reason: str  # "" when kept, else one of REASONS
    n_heads: int
    stability: float = float("nan")
    details: dict = field(default_factory=dict)


def check_image(
    image: np.ndarray,
    boxes: np.ndarray,
    detect: Callable | None,
    find_faces: Callable | None,
    rules: dict,
    min_split_side: int = 10,
) -> FilterResult:
    """Apply the enabled rules in the paper's order; stop at the first that fails.

    image: RGB (H, W, 3); boxes: (N, 4) the detector's heads on the image; rules: {rule: bool}
    for ``no_heads``, ``flip``, ``face``, ``split``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    H, W = image.shape[:2]
    n = len(boxes)
    result = FilterResult(True, "", n)
    if rules.get("no_heads", True) and n == 0:
        return FilterResult(False, "no_heads", n)
    if rules.get("flip", True) and n > 0:
        flipped = detect([np.ascontiguousarray(image[:, ::-1])])[0]
        back = flip_boxes(flipped.boxes, W)
        result.stability = flip_stability(boxes, back)
        result.details["n_heads_flipped"] = len(back)
        if len(back) != n:
            result.keep, result.reason = False, "flip_count"
            return result
    if rules.get("face", True):
        faces = find_faces(image)
        orphans = faces_without_head(faces, boxes)
        result.details["faces"] = int(len(faces))
        if orphans:
            result.keep, result.reason = False, "face_without_head"
            result.details["faces_without_head"] = orphans
            return result
    if rules.get("split", True) and n > 0:
        split = vertical_split(W, boxes)
        if split_is_valid(W, H, boxes, split, min_split_side):
            left, right = detect([np.ascontiguousarray(image[:, :split]), np.ascontiguousarray(image[:, split:])])
            result.details["split"] = int(split)
            result.details["n_heads_split"] = len(left) + len(right)
            if len(left) + len(right) != n:
                result.keep, result.reason = False, "split_count"
                return result
    return result
