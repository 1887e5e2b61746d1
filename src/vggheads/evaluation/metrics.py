"""Pure metric functions shared by the protocols (numpy in, numbers out).

Units: NME is in percent of the normalising size (the paper's tables: 2.917 means 2.917 %), so the
paper's failure threshold "NME > 0.05" is ``FAILURE_NME = 5.0`` here.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .boxes import as_boxes, iou_matrix

FAILURE_NME = 5.0                                 # percent: the paper's FR threshold 0.05
SEVEN_LANDMARKS = (36, 39, 42, 45, 33, 48, 54)    # eye corners, nose tip, mouth corners (NoW / DAD)
COCO_IOUS = np.linspace(0.5, 0.95, 10)
COCO_RECALLS = np.linspace(0.0, 1.0, 101)


# ---------------------------------------------------------------- matching, NME, failure rate

def match_hungarian(gt_boxes, pred_boxes, iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """One-to-one matching maximising total IoU; pairs below ``iou_threshold`` are dropped.

    -> [(gt index, prediction index, IoU)], sorted by gt index.
    """
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


# ---------------------------------------------------------------- 3D: rotation, Procrustes, Chamfer, Z_n

def rotation_error_frobenius(R_pred, R_gt) -> float:
    """DAD-3DHeads pose error ``||I - R_pred R_gt^T||_F`` (0 for equal rotations, 2*sqrt(2) at 180 deg)."""
    R_pred = np.asarray(R_pred, dtype=np.float64)
    R_gt = np.asarray(R_gt, dtype=np.float64)
    return float(np.linalg.norm(np.eye(3) - R_pred @ R_gt.T, "fro"))


def procrustes(X, Y, scaling: bool = True, reflection: str | bool = "best"):
    """MATLAB's ``procrustes``: the similarity (with optional reflection) mapping Y onto X.

    X, Y: (N, 3). Returns ``(d, Z, (scale, T, c))`` with ``Z = scale * Y @ T + c`` the transformed
    Y and ``d`` the residual normalised by X's spread. ``reflection="best"`` (DAD-3DHeads' choice)
    lets the fit reflect if that fits better; ``False`` forbids it.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    mu_x, mu_y = X.mean(0), Y.mean(0)
    X0, Y0 = X - mu_x, Y - mu_y
    norm_x, norm_y = np.sqrt((X0 ** 2).sum()), np.sqrt((Y0 ** 2).sum())
    X0, Y0 = X0 / norm_x, Y0 / norm_y
    U, s, Vt = np.linalg.svd(X0.T @ Y0, full_matrices=False)
    V = Vt.T
    T = V @ U.T
    if reflection != "best":
        have_reflection = np.linalg.det(T) < 0
        if bool(reflection) != have_reflection:
            V[:, -1] *= -1
            s[-1] *= -1
            T = V @ U.T
    trace = s.sum()
    if scaling:
        scale = trace * norm_x / norm_y
        d = 1 - trace ** 2
    else:
        scale = 1.0
        d = 1 + (norm_y / norm_x) ** 2 - 2 * trace * norm_y / norm_x
    c = mu_x - scale * mu_y @ T
    return float(d), scale * Y @ T + c, (float(scale), T, c)


def chamfer_one_sided(source, target, squared: bool = True) -> float:
    """Mean over ``source`` points of the distance to the nearest ``target`` point.

    ``squared=True`` matches kaolin's ``chamfer_distance(p1, p2, w1=1, w2=0)`` used by the official
    DAD-3DHeads benchmark (kaolin's sided distances are squared).
    """
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(np.asarray(target, dtype=np.float64)).query(np.asarray(source, dtype=np.float64))
    return float(np.mean(dist ** 2 if squared else dist))


def z_n_accuracy(pred_points, gt_points, n: int = 5) -> float:
    """DAD-3DHeads' Z_n: for each GT point and its ``n`` nearest GT neighbours, the fraction of
    pairs whose depth order (``z >=``) is the same in the prediction. Both (K, 3), same topology,
    z pointing away from the camera in both."""
    from scipy.spatial import cKDTree

    gt = np.asarray(gt_points, dtype=np.float64)
    pred = np.asarray(pred_points, dtype=np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"z_n_accuracy: prediction {pred.shape} and ground truth {gt.shape} differ")
    _, idx = cKDTree(gt).query(gt, k=n + 1)
    nbr = idx[:, 1:]
    gt_order = gt[:, None, 2] >= gt[nbr, 2]
    pred_order = pred[:, None, 2] >= pred[nbr, 2]
    return float(np.mean(gt_order == pred_order))


# ---------------------------------------------------------------- average precision

def voc_ap(recall, precision) -> float:
    """All-point interpolated AP (the WIDER FACE / VOC2010+ ``voc_ap``)."""
    mrec = np.concatenate(([0.0], np.asarray(recall, dtype=np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.nan_to_num(np.asarray(precision, dtype=np.float64)), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def coco_ap(gt_boxes: list, pred_boxes: list, pred_scores: list, iou_thresholds=COCO_IOUS,
            max_dets: int = 100) -> dict:
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
