"""Heads matched to heads, and the NME with its failure rate: one definition, one unit.

**Units.** NME is in **percent** of the normalising size, ``sqrt(w * h)`` of the ground-truth box
(the paper's tables: 2.917 means 2.917 %), everywhere in this project: the training's validation,
the evaluation protocols, label quality and the filter's agreement check. The paper's failure
threshold "NME > 0.05" is therefore ``FAILURE_NME = 5.0``; a failure rate is a fraction in [0, 1].
:func:`coco_ap` returns AP as a fraction.

**Key names.** Every JSON key, CSV column and MLflow metric that carries a quantity with a unit names
it: ``_pct`` (percent), ``_deg`` (degrees), ``_px`` (pixels), ``_s`` (seconds). AP, recall, precision,
failure rate and ``matched`` are fractions in [0, 1] and keep plain names (``ap50``, ``recall``,
``failure_rate``). The names below are the one place the code takes them from; :func:`unitless_keys`
finds a key that breaks the rule.
"""

from __future__ import annotations

import numpy as np

from .boxes import as_boxes, iou_matrix

MATCH_IOU = 0.5  # a prediction and a ground-truth head are paired only at IoU >= this
FAILURE_NME = 5.0  # percent: a head with NME above this is a failure (paper: NME > 0.05)
COCO_IOUS = np.linspace(0.5, 0.95, 10)
COCO_RECALLS = np.linspace(0.0, 1.0, 101)

PCT, DEG, PX, SEC = "_pct", "_deg", "_px", "_s"  # unit suffixes of key names
UNIT_SUFFIXES = (PCT, DEG, PX, SEC)
NME_KEY = "nme" + PCT  # head-vertex (or the protocol's points) NME, percent
NME68_KEY = "nme68" + PCT  # NME over the 68 landmarks, percent
NME68_ANCHOR_KEY = "nme68_anchor" + PCT  # 68-landmark NME of the best anchor in each GT box, percent
POSE_MAE_KEY = "mae" + DEG  # mean of the yaw, pitch and roll absolute errors, degrees
YAW_KEY, PITCH_KEY, ROLL_KEY = "yaw" + DEG, "pitch" + DEG, "roll" + DEG  # per-angle absolute errors, degrees
GEODESIC_KEY = "geodesic" + DEG  # rotation angle between two head poses, degrees
# key words whose quantity has a unit: a key containing one of them must end with a unit suffix
_UNIT_WORDS = ("nme", "mae", "geodesic", "yaw", "pitch", "roll", "angle", "pixel")
# keys that contain such a word but carry a count or a histogram (its bins name the unit), not the quantity
_COUNT_ENDINGS = ("_failures", "_images", "_hist", "_histogram")


def unitless_keys(obj, prefix: str = "") -> list[str]:
    """Dotted paths of the keys of a JSON-like ``obj`` that carry an NME, an angle or a pixel size
    without naming its unit (see the module's docstring); [] when every key follows the rule."""
    bad = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            name = str(key)
            path = f"{prefix}.{name}" if prefix else name
            low = name.lower()
            if (
                any(w in low for w in _UNIT_WORDS)
                and not low.endswith(UNIT_SUFFIXES)
                and not low.endswith(_COUNT_ENDINGS)
                and not isinstance(value, (str, bool))
            ):
                bad.append(path)
            bad += unitless_keys(value, path)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            bad += unitless_keys(value, f"{prefix}[{i}]")
    return bad


def match_hungarian(gt_boxes, pred_boxes, iou_threshold: float = MATCH_IOU) -> list[tuple[int, int, float]]:
    """One-to-one matching maximising total IoU; pairs below ``iou_threshold`` are dropped.

    -> [(gt index, prediction index, IoU)], sorted by gt index.
    """
    from scipy.optimize import linear_sum_assignment

    ious = iou_matrix(as_boxes(gt_boxes), as_boxes(pred_boxes))
    if ious.size == 0:
        return []
    rows, cols = linear_sum_assignment(ious, maximize=True)
    pairs = [(int(r), int(c), float(ious[r, c])) for r, c in zip(rows, cols) if ious[r, c] >= iou_threshold]
    return sorted(pairs)


def nme(pred_points, gt_points, norm_size: float) -> float:
    """Mean L2 distance of (N, 2) points / ``norm_size``, in percent; NaN GT rows are skipped."""
    pred = np.asarray(pred_points, dtype=np.float64)[:, :2]
    gt = np.asarray(gt_points, dtype=np.float64)[:, :2]
    if pred.shape != gt.shape:
        raise ValueError(f"nme: prediction has {pred.shape[0]} points, ground truth {gt.shape[0]}")
    keep = np.isfinite(gt).all(axis=1)
    return float(np.linalg.norm(pred[keep] - gt[keep], axis=1).mean() / norm_size * 100.0)


def box_norm(box) -> float:
    """sqrt(w * h) of an xyxy box, the normaliser of every NME here."""
    b = as_boxes(box)[0]
    return float(np.sqrt(max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)))


def failure_rate(nmes, threshold: float = FAILURE_NME) -> float:
    """Fraction of NMEs (percent) above ``threshold``; NaN/inf count as failures."""
    v = np.asarray(nmes, dtype=np.float64)
    if v.size == 0:
        return float("nan")
    return float(np.mean(~(v <= threshold)))


def coco_ap(gt_boxes: list, pred_boxes: list, pred_scores: list, iou_thresholds=COCO_IOUS, max_dets: int = 100) -> dict:
    """COCOeval's bbox AP for one category, area range "all", ``maxDets`` detections per image.

    gt_boxes: per image (G, 4) xyxy; pred_boxes: per image (D, 4) xyxy; pred_scores: per image (D,).
    Follows pycocotools step by step (score sort with mergesort, greedy matching to the best
    unmatched GT with IoU >= t, precision envelope, 101 recall points); no crowd boxes.
    Returns ``{"ap": mean over thresholds, "ap50", "ap75" (when evaluated), "per_iou": {t: ap},
    "curve": {"recall", "precision"} at the first threshold}``.
    """
    iou_thresholds = np.atleast_1d(np.asarray(iou_thresholds, dtype=np.float64))
    n_t = len(iou_thresholds)
    scores_all, matched_all, ignored_all = [], [], []
    n_gt = 0
    for gts, dts, scs in zip(gt_boxes, pred_boxes, pred_scores):
        gts, dts = as_boxes(gts), as_boxes(dts)
        scs = np.asarray(scs, dtype=np.float64).reshape(-1)
        n_gt += len(gts)
        order = np.argsort(-scs, kind="mergesort")[:max_dets]
        dts, scs = dts[order], scs[order]
        matched = np.zeros((n_t, len(dts)), dtype=bool)
        if len(dts) and len(gts):
            ious = iou_matrix(dts, gts)
            for ti, t in enumerate(iou_thresholds):
                gt_taken = np.zeros(len(gts), dtype=bool)
                for d in range(len(dts)):
                    best, m = min(t, 1 - 1e-10), -1
                    for g in range(len(gts)):
                        if gt_taken[g] or ious[d, g] < best:
                            continue
                        best, m = ious[d, g], g
                    if m >= 0:
                        gt_taken[m] = True
                        matched[ti, d] = True
        # COCOeval ignores an unmatched detection whose (signed) area w*h is outside the area range
        area = (dts[:, 2] - dts[:, 0]) * (dts[:, 3] - dts[:, 1])
        ignored = ~matched & ((area < 0) | (area > 1e10))[None, :]
        scores_all.append(scs)
        matched_all.append(matched)
        ignored_all.append(ignored)
    result: dict = {"n_gt": n_gt, "per_iou": {}}
    if n_gt == 0:
        result.update(ap=float("nan"), ap50=float("nan"))
        return result
    scores = np.concatenate(scores_all) if scores_all else np.zeros(0)
    matched = np.concatenate(matched_all, axis=1) if matched_all else np.zeros((n_t, 0), bool)
    order = np.argsort(-scores, kind="mergesort")
    ignored = np.concatenate(ignored_all, axis=1) if ignored_all else np.zeros((n_t, 0), bool)
    matched, ignored = matched[:, order], ignored[:, order]
    aps = []
    for ti, t in enumerate(iou_thresholds):
        tp = np.cumsum(matched[ti]).astype(np.float64)
        fp = np.cumsum(~matched[ti] & ~ignored[ti]).astype(np.float64)
        rc = tp / n_gt
        pr = tp / (fp + tp + np.spacing(1))
        pr_env = np.maximum.accumulate(pr[::-1])[::-1] if len(pr) else pr
        inds = np.searchsorted(rc, COCO_RECALLS, side="left")
        q = np.zeros(len(COCO_RECALLS))
        valid = inds < len(pr_env)
        q[valid] = pr_env[inds[valid]]
        ap = float(q.mean())
        aps.append(ap)
        result["per_iou"][round(float(t), 2)] = ap
        if ti == 0:
            result["curve"] = {"recall": rc.tolist(), "precision": pr.tolist(), "score": scores[order].tolist()}
    result["ap"] = float(np.mean(aps))
    for key, t in (("ap50", 0.5), ("ap75", 0.75)):
        if round(t, 2) in result["per_iou"]:
            result[key] = result["per_iou"][round(t, 2)]
    return result
