"""Placing a head on a skeleton: solve the head's rotation, scale and 2D translation from the COCO
face keypoints (nose, eyes, ears) under the weak-perspective model of the paper,
``v_img = s * R v + t``.

Each visible keypoint k has a 3D counterpart X_k on the head mesh (model frame: x to the subject's
left, y up, z out of the face, metres). We minimise, over yaw/pitch/roll (of the head relative to a
frontal face), log-scale and (tx, ty),

    sum_k w_k |s (R X_k)_xy + t - p_k|^2 / (s0 sigma)^2                  (keypoints; sigma = 1 cm)
  + (pitch / sigma_pitch)^2 + (roll / sigma_roll)^2                      (weak priors)
  + ((log s - log s_prior) / sigma_scale)^2                              (when a body scale is known)
  + sum_missing w_miss relu(facing_k - 0.3)^2                             (a keypoint the pose
                                                                            estimator did not see is
                                                                            probably turned away)
  + sum_seen w_seen relu(f_k - facing_k)^2                                (a seen nose faces the
                                                                            camera, f = -0.1; a seen
                                                                            eye nearly, f = -0.45)

from several yaw starts (front, profiles, back), and keep the best. Profile views (one ear hidden)
and heads seen from behind (nose and eyes hidden) come out right because of the last term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRONTAL = np.diag([1.0, -1.0, -1.0])  # model frame -> image frame for a frontal face
# COCO face keypoints in order: nose, left eye, right eye, left ear, right ear
FACE_KEYPOINTS = (0, 1, 2, 3, 4)


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Image-frame rotation of a head turned by ``yaw`` (about its vertical axis, + = towards the
    subject's left), ``pitch`` (+ = looking up) and ``roll`` (+ = tilting towards its left shoulder), radians.

    ``R = FRONTAL @ Ry(yaw) @ Rx(-pitch) @ Rz(roll)``; these are the fit's own angles, not the
    paper's reported convention (use :func:`vggheads.geometry.matrix_to_angles` for that).
    """
    return FRONTAL @ _ry(yaw) @ _rx(-pitch) @ _rz(roll)


@dataclass
class HeadAnchors:
    """3D points of one head (model frame) matching the COCO face keypoints, with outward directions."""

    points: np.ndarray  # (5, 3) nose, left eye, right eye, left ear, right ear
    normals: np.ndarray  # (5, 3) unit directions the keypoints face


@dataclass
class Placement:
    R: np.ndarray  # (3, 3) model -> image rotation
    scale: float  # pixels per model unit (metre)
    translation: np.ndarray  # (2,) pixels
    cost: float
    n_points: int  # keypoints used
    angles: tuple  # (yaw, pitch, roll) of the fit, degrees (fit convention)


def fit_head(
    keypoints: np.ndarray,
    anchors: HeadAnchors,
    min_confidence: float = 0.3,
    scale_prior: float | None = None,
    sigma_scale: float = 0.35,
    sigma_pitch_deg: float = 25.0,
    sigma_roll_deg: float = 20.0,
    missing_weight: float = 1.0,
    seen_weight: float = 10.0,
    point_sigma: float = 0.01,
    yaw_starts_deg=(-90, 0, 90, 180),
) -> Placement | None:
    """Fit one head to COCO keypoints ``(17, 3)`` (x, y, confidence); None when fewer than 2 face
    keypoints are confident and no ``scale_prior`` helps."""
    from scipy.optimize import least_squares

    kp = np.asarray(keypoints, dtype=np.float64)
    face = kp[list(FACE_KEYPOINTS)]
    seen = face[:, 2] >= min_confidence
    n = int(seen.sum())
    if n < 2:
        return None
    P = face[seen, :2]
    X = anchors.points[seen]
    Nmiss = anchors.normals[~seen]
    Nseen = anchors.normals[seen]
    # a seen nose faces the camera, a seen eye nearly so (a far eye in a profile still shows); ears
    # are left free: pose estimators often report the hidden ear
    seen_min_facing = np.array([-0.1, -0.45, -0.45, -2.0, -2.0])[seen]
    w = np.sqrt(np.clip(face[seen, 2], 0.3, 1.0))
    # initial scale: pixel spread of the points over the model spread (a rough start)
    spread_px = np.linalg.norm(P - P.mean(0), axis=1).mean()
    spread_m = np.linalg.norm(X - X.mean(0), axis=1).mean()
    s0 = scale_prior if scale_prior else max(spread_px / max(spread_m, 1e-6), 1e-3)
    if n == 2 and not scale_prior:
        s0 = max(spread_px / max(spread_m, 1e-6), 1e-3)
    sig_p, sig_r = np.radians(sigma_pitch_deg), np.radians(sigma_roll_deg)

    def residuals(x):
        yaw, pitch, roll, logs, tx, ty = x
        R = head_rotation(yaw, pitch, roll)
        s = np.exp(logs)
        proj = s * (X @ R.T)[:, :2] + (tx, ty)
        r = [((proj - P) * w[:, None] / (s0 * point_sigma)).ravel(), [pitch / sig_p, roll / sig_r]]
        if scale_prior:
            r.append([(logs - np.log(scale_prior)) / sigma_scale])
        if len(Nmiss):
            facing = -(Nmiss @ R.T)[:, 2]  # > 0: turned towards the camera
            r.append(missing_weight * np.maximum(facing - 0.3, 0.0))
        facing_seen = -(Nseen @ R.T)[:, 2]
        r.append(seen_weight * np.maximum(seen_min_facing - facing_seen, 0.0))
        return np.concatenate([np.asarray(a, dtype=np.float64) for a in r])

    best = None
    for yaw0 in yaw_starts_deg:
        R0 = head_rotation(np.radians(yaw0), 0.0, 0.0)
        # translation start: match the centroids at the start scale
        t0 = P.mean(0) - s0 * (X @ R0.T)[:, :2].mean(0)
        x0 = np.array([np.radians(yaw0), 0.0, 0.0, np.log(s0), t0[0], t0[1]])
        sol = least_squares(
            residuals, x0, method="lm" if len(residuals(x0)) >= 6 else "trf", max_nfev=200, ftol=1e-6, xtol=1e-6
        )
        cost = float(sol.cost)
        if best is None or cost < best[0] - 1e-9:
            best = (cost, sol.x)
    cost, (yaw, pitch, roll, logs, tx, ty) = best
    yaw = (yaw + np.pi) % (2 * np.pi) - np.pi
    return Placement(
        R=head_rotation(yaw, pitch, roll),
        scale=float(np.exp(logs)),
        translation=np.array([tx, ty]),
        cost=cost,
        n_points=n,
        angles=tuple(float(np.degrees(a)) for a in (yaw, pitch, roll)),
    )


def anchors_from_mesh(
    vertices: np.ndarray, landmarks: np.ndarray, ear_left: np.ndarray | None = None, ear_right: np.ndarray | None = None
) -> HeadAnchors:
    """Anchors from a head in the model frame: ``vertices (V, 3)``, its 68 ``landmarks (68, 3)``,
    and optional vertex index sets of the left/right ear (else the ears are estimated as the mesh's
    extreme points to each side at the height between the eyes and the nose tip)."""
    v = np.asarray(vertices, dtype=np.float64)
    lm = np.asarray(landmarks, dtype=np.float64)
    nose = lm[30]
    left_eye = lm[42:48].mean(0)  # iBUG 42-47: the subject's left eye
    right_eye = lm[36:42].mean(0)
    ears = []
    for side, idx in ((1.0, ear_left), (-1.0, ear_right)):
        if idx is not None and len(idx):
            ears.append(v[np.asarray(idx)].mean(0))
            continue
        y_mid = (left_eye[1] + nose[1]) / 2
        band = np.abs(v[:, 1] - y_mid) < 0.02
        band &= v[:, 2] < nose[2] - 0.05
        cand = v[band] if band.any() else v
        far = cand[np.argsort(-side * cand[:, 0])[: max(5, len(cand) // 50)]]
        ears.append(far.mean(0))
    points = np.stack([nose, left_eye, right_eye, ears[0], ears[1]])
    normals = np.stack(
        [
            [0.0, 0.0, 1.0],
            _unit(np.array([0.35, 0.0, 1.0])),
            _unit(np.array([-0.35, 0.0, 1.0])),
            _unit(np.array([1.0, 0.0, -0.1])),
            _unit(np.array([-1.0, 0.0, -0.1])),
        ]
    )
    return HeadAnchors(points=points, normals=normals)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)
