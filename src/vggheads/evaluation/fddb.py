"""FDDB: reader of the folds and ellipse lists, FDDB's own discrete/continuous ROC, and AP50.

Files (``fddb.folds``): ``FDDB-fold-NN.txt`` (image names) and ``FDDB-fold-NN-ellipseList.txt``
(name, count, then ``major_radius minor_radius angle cx cy 1`` per face). Images
(``fddb.images``, the ``originalPics`` folder): ``<name>.jpg``.

Two scores:

* **Discrete ROC** as FDDB's ``evaluate.cpp`` computes it: per image and per unique detection
  score, the detections scoring at least that much are matched to the ellipses by the Hungarian
  algorithm maximising the summed overlap; overlap = |ellipse ∩ box| / |ellipse ∪ box| counted on
  the image's pixel grid (both regions drawn filled as OpenCV draws them, clipped to the image);
  a pair with overlap > 0.5 is a true positive, every other kept detection a false positive. The
  curve is TPR against the number of false positives; ``tpr_at_fp`` reads it at a budget (1000 is
  the usual one). Without the image files the regions are not clipped to the image.
* **AP50 as the VGGHeads paper reports it**: its script scores face boxes with pycocotools against
  rectangles derived from the ellipses and prints AP@[.5:.95]; the paper's table gives AP50. Here the
  rectangles are the axis-aligned extent of each ellipse (the paper's ``label.txt`` conversion is
  not published) and the COCO algorithm is :func:`vggheads.core.metrics.coco_ap`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import InputError
from ..core.metrics import coco_ap
from ..core.images import image_size, load_rgb
from .types import BenchmarkResult, HeadPrediction, Predictor

log = logging.getLogger(__name__)

FOLDS = tuple(range(1, 11))


@dataclass
class FddbImage:
    name: str  # e.g. 2002/08/11/big/img_591
    fold: int
    ellipses: np.ndarray  # (G, 5): major radius, minor radius, angle (rad), cx, cy
    image_path: Path | None = None
    size: tuple[int, int] | None = None  # (width, height) when the image file is known


def read_fddb(folds_dir: str | Path, images: str | Path | None = None, folds=FOLDS) -> list[FddbImage]:
    """Images of the given folds with their ellipses, in fold order; checks the two lists agree."""
    folds_dir = Path(folds_dir)
    if not folds_dir.is_dir():
        raise InputError(f"{folds_dir}: FDDB folds folder not found")
    images = Path(images) if images else None
    out = []
    for fold in folds:
        list_path = folds_dir / f"FDDB-fold-{fold:02d}.txt"
        ell_path = folds_dir / f"FDDB-fold-{fold:02d}-ellipseList.txt"
        for p in (list_path, ell_path):
            if not p.exists():
                raise InputError(f"{p}: FDDB fold file not found")
        names = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
        lines = [line.strip() for line in ell_path.read_text().splitlines()]
        pos = 0
        parsed: list[tuple[str, np.ndarray]] = []
        while pos < len(lines):
            if not lines[pos]:
                pos += 1
                continue
            name = lines[pos]
            try:
                count = int(lines[pos + 1])
            except (IndexError, ValueError):
                raise InputError(f"{ell_path}:{pos + 2}: expected the face count of '{name}'") from None
            rows = []
            for k in range(count):
                n = pos + 2 + k
                parts = lines[n].split() if n < len(lines) else []
                if len(parts) < 5:
                    raise InputError(
                        f"{ell_path}:{n + 1}: expected 'major minor angle cx cy 1', got '{lines[n] if n < len(lines) else '(end of file)'}'"
                    )
                rows.append([float(v) for v in parts[:5]])
            parsed.append((name, np.asarray(rows, dtype=np.float64).reshape(-1, 5)))
            pos += 2 + count
        if [n for n, _ in parsed] != names:
            raise InputError(f"{ell_path}: its images differ from {list_path.name} (order or names)")
        for name, ell in parsed:
            path = None
            size = None
            if images is not None:
                candidate = images / f"{name}.jpg"
                if candidate.exists():
                    path = candidate
                    size = image_size(candidate)
            out.append(FddbImage(name, fold, ell, path, size))
    return out


def ellipse_boxes(ellipses: np.ndarray) -> np.ndarray:
    """(G, 5) ellipses -> (G, 4) xyxy axis-aligned extents."""
    e = np.asarray(ellipses, dtype=np.float64).reshape(-1, 5)
    a, b, t, cx, cy = e.T
    hx = np.sqrt((a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2)
    hy = np.sqrt((a * np.sin(t)) ** 2 + (b * np.cos(t)) ** 2)
    return np.stack([cx - hx, cy - hy, cx + hx, cy + hy], axis=1)


# ---------------------------------------------------------------- region overlap on the pixel grid


def _canvas(ellipses: np.ndarray, boxes_xywh: np.ndarray, size: tuple[int, int] | None) -> tuple[int, int]:
    if size is not None:
        return int(size[0]), int(size[1])
    ext = [1.0, 1.0]
    if len(ellipses):
        eb = ellipse_boxes(ellipses)
        ext = [max(ext[0], eb[:, 2].max() + 2), max(ext[1], eb[:, 3].max() + 2)]
    if len(boxes_xywh):
        ext = [
            max(ext[0], (boxes_xywh[:, 0] + boxes_xywh[:, 2]).max() + 2),
            max(ext[1], (boxes_xywh[:, 1] + boxes_xywh[:, 3]).max() + 2),
        ]
    return int(math.ceil(ext[0])), int(math.ceil(ext[1]))


def ellipse_mask(ellipse, width: int, height: int) -> np.ndarray:
    """Filled ellipse as FDDB draws it: ``cvEllipse(center rounded, axes truncated, angle in degrees)``."""
    import cv2

    a, b, t, cx, cy = (float(v) for v in ellipse)
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.ellipse(mask, (int(np.rint(cx)), int(np.rint(cy))), (int(a), int(b)), math.degrees(t), 0, 360, 1, -1)
    return mask.astype(bool)


def rectangle_mask(box_xywh, width: int, height: int) -> np.ndarray:
    """Filled rectangle as FDDB draws it: corners ``(x, y)`` and ``(x + w, y + h)`` rounded, inclusive."""
    x, y, w, h = (float(v) for v in box_xywh[:4])
    x1, y1, x2, y2 = (int(np.rint(v)) for v in (x, y, x + w, y + h))
    mask = np.zeros((height, width), dtype=bool)
    xa, xb = max(min(x1, x2), 0), min(max(x1, x2), width - 1)
    ya, yb = max(min(y1, y2), 0), min(max(y1, y2), height - 1)
    if xa <= xb and ya <= yb:
        mask[ya : yb + 1, xa : xb + 1] = True
    return mask


def overlap_matrix(ellipses: np.ndarray, boxes_xywh: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """(G, D) pixel-grid IoU between every ellipse and every detection rectangle."""
    ellipses = np.asarray(ellipses, dtype=np.float64).reshape(-1, 5)
    boxes_xywh = np.asarray(boxes_xywh, dtype=np.float64).reshape(-1, 4)
    out = np.zeros((len(ellipses), len(boxes_xywh)))
    if out.size == 0:
        return out
    width, height = _canvas(ellipses, boxes_xywh, size)
    rects = [rectangle_mask(b, width, height) for b in boxes_xywh]
    for i, e in enumerate(ellipses):
        em = ellipse_mask(e, width, height)
        for j, rm in enumerate(rects):
            inter = np.count_nonzero(em & rm)
            if inter:
                out[i, j] = inter / np.count_nonzero(em | rm)
    return out


# ---------------------------------------------------------------- FDDB's ROC


def image_results(overlaps: np.ndarray, scores: np.ndarray) -> list[tuple[float, int, float, int]]:
    """One image: for each unique score (ascending) -> (threshold, TP discrete, TP continuous, FP)."""
    scores = np.asarray(scores, dtype=np.float64)
    out = []
    for st in np.unique(scores):
        valid = np.flatnonzero(scores >= st)
        tp_disc, tp_cont = 0, 0.0
        if overlaps.shape[0] and len(valid):
            sub = overlaps[:, valid]
            rows, cols = linear_sum_assignment(sub, maximize=True)
            matched = sub[rows, cols]
            matched = matched[matched > 0]
            tp_cont = float(matched.sum())
            tp_disc = int(np.count_nonzero(matched > 0.5))
        out.append((float(st), tp_disc, tp_cont, len(valid) - tp_disc))
    return out


def roc(per_image: list[tuple[int, list[tuple[float, int, float, int]]]]) -> dict[str, np.ndarray]:
    """Merge per-image results ``(n_faces, results)`` into the dataset ROC, as ``Results::merge``.

    At each unique threshold t (ascending), every image contributes its result for the detections
    scoring >= t (nothing if it has none). -> {"threshold", "tpr", "tpr_continuous", "fp"}.
    """
    n_faces = sum(n for n, _ in per_image)
    thresholds = np.unique([r[0] for _, res in per_image for r in res])
    T = len(thresholds)
    acc = np.zeros((T + 1, 3))
    for _, res in per_image:
        start = 0
        for st, tp_d, tp_c, fp in res:
            end = int(np.searchsorted(thresholds, st, side="right"))
            acc[start] += (tp_d, tp_c, fp)
            acc[end] -= (tp_d, tp_c, fp)
            start = end
    acc = np.cumsum(acc[:T], axis=0)
    denom = n_faces if n_faces else 1
    return {"threshold": thresholds, "tpr": acc[:, 0] / denom, "tpr_continuous": acc[:, 1] / denom, "fp": acc[:, 2]}


def tpr_at_fp(curve: dict, max_fp: float) -> float:
    """The best discrete TPR among the ROC points with at most ``max_fp`` false positives."""
    ok = curve["fp"] <= max_fp
    return float(curve["tpr"][ok].max()) if ok.any() else 0.0


# ---------------------------------------------------------------- running a predictor


def clip_boxes(boxes_xyxy: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """The VGGHeads FDDB script clips predicted boxes to the image before scoring."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
    if size is not None and len(b):
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, size[0])
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, size[1])
    return b


def score_fddb(
    images: list[FddbImage], boxes: dict[str, np.ndarray], scores: dict[str, np.ndarray], fp_budgets=(1000, 2000)
) -> tuple[dict, dict]:
    """Score detections (image name -> (D, 4) xyxy, (D,) scores) -> (metrics, curves)."""
    per_image = []
    gts, dts, scs = [], [], []
    for im in images:
        b = clip_boxes(boxes.get(im.name, np.zeros((0, 4))), im.size)
        s = np.asarray(scores.get(im.name, np.zeros(0)), dtype=np.float64).reshape(-1)
        xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
        ov = overlap_matrix(im.ellipses, xywh, im.size)
        per_image.append((len(im.ellipses), image_results(ov, s) if len(s) else []))
        gts.append(ellipse_boxes(im.ellipses))
        dts.append(b)
        scs.append(s)
    curve = roc(per_image)
    coco = coco_ap(gts, dts, scs)
    metrics = {
        "ap50": coco["ap50"],
        "ap_coco": coco["ap"],
        "faces": int(sum(len(im.ellipses) for im in images)),
        "images": len(images),
    }
    for fp in fp_budgets:
        metrics[f"disc_tpr_at_{fp}fp"] = tpr_at_fp(curve, fp)
    curves = {
        "disc_roc": {"fp": curve["fp"].tolist(), "tpr": curve["tpr"].tolist()},
        "cont_roc": {"fp": curve["fp"].tolist(), "tpr": curve["tpr_continuous"].tolist()},
        "pr_ap50": {"recall": coco["curve"]["recall"], "precision": coco["curve"]["precision"]},
    }
    return metrics, curves


def evaluate_fddb(
    images: list[FddbImage],
    predictor: Predictor,
    system: str = "model",
    use_face_box: bool = True,
    min_score: float | None = None,
    max_images: int | None = None,
    progress: bool = True,
) -> BenchmarkResult:
    """Run ``predictor`` on every FDDB image with a file; score discrete ROC and AP50 on those images."""
    from tqdm import tqdm

    present = [im for im in images if im.image_path is not None][:max_images]
    if not present:
        raise InputError("FDDB evaluation: none of the fold images was found under fddb.images")
    boxes, scores = {}, {}
    for im in tqdm(present, desc="fddb", disable=not progress):
        heads: list[HeadPrediction] = [
            h for h in predictor(load_rgb(im.image_path)) if min_score is None or h.score >= min_score
        ]
        boxes[im.name] = np.array(
            [(h.face_box if use_face_box and h.face_box is not None else h.box) for h in heads]
        ).reshape(-1, 4)
        scores[im.name] = np.array([h.score for h in heads])
    metrics, curves = score_fddb(present, boxes, scores)
    metrics["images_missing"] = len(images) - len(present)
    result = BenchmarkResult("fddb", system, metrics=metrics, curves=curves)
    result.protocol = {
        "roc": "FDDB evaluate.cpp: per-threshold Hungarian matching on pixel-grid ellipse/box overlap, TP at > 0.5",
        "ap50": "COCO AP at IoU 0.5 (pycocotools algorithm) against the ellipses' axis-aligned extents, boxes clipped to the image",
        "images": "all folds" if len(present) == len(images) else f"{len(present)} of {len(images)} images (subset)",
        "boxes": "face boxes where the system gives them, else its boxes"
        if use_face_box
        else "the system's (head) boxes",
    }
    result.records = [
        {"image": im.name, "faces": len(im.ellipses), "detections": len(scores[im.name])} for im in present
    ]
    return result
