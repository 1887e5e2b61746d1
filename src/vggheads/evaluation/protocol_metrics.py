"""Metric functions of the protocols (numpy in, numbers out): rotation and shape errors, VOC AP.

Matching, NME (percent), the failure rate and COCO AP are the project's one definition in
:mod:`vggheads.core.metrics`.
"""

from __future__ import annotations

import numpy as np


SEVEN_LANDMARKS = (36, 39, 42, 45, 33, 48, 54)  # eye corners, nose tip, mouth corners (NoW / DAD)


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
    norm_x, norm_y = np.sqrt((X0**2).sum()), np.sqrt((Y0**2).sum())
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
        d = 1 - trace**2
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
    return float(np.mean(dist**2 if squared else dist))


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
