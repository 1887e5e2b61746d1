"""Fit the head model to 68 image landmarks: pose (scaled orthographic) and, optionally, shape and
expression with a Gaussian prior. Batched; numpy.

Used by the evaluation (dlib's 68 landmarks -> head pose, the paper's "Dlib" row) and by the
``landmark-fit`` labeller of ``label_3dmm``. The camera is the paper's: ``x_img = s * (R X)[:2] + t``
with R mapping the head model frame (y up, z out of the face) to the image frame (x right, y down,
z away from the camera), so a frontal face has ``R = diag(1, -1, -1)``; the fitted R, s and t are
the paper's rotation, scale and translation (depth translation 0) and yaw/pitch/roll come from
:func:`.rotmat.matrix_to_angles` (numpy, as :func:`vggheads.geometry.matrix_to_angles`).

Method: an affine camera fitted by least squares, projected to the nearest scaled rotation, then
Gauss-Newton on (rotation, scale, translation); with ``n_components > 0``, alternate that with the
linear least-squares solve of the coefficients under the prior ``lambda * ||c||^2`` (coefficients
in units of their standard deviation, as FLAME's). Points are normalised by the size of their box,
so ``prior_weight`` does not depend on the image resolution.

Example::

    model = LandmarkModel.from_head_model(load_head_model("data/headmodel/head_model.npz"), n_shape=20, n_expr=10)
    fit = fit_landmarks(points, model)           # points: (B, 68, 2) pixels
    fit.yaw, fit.pitch, fit.roll                  # (B,) degrees
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .param_layout import N_PARAMS, N_SHAPE, ROT6D, SCALE_INDEX, TRANSLATION
from .rotmat import matrix_to_angles

CANONICAL_Z_OFFSET = 0.05  # the paper adds 0.05 to z of the canonical vertices (geometry.layer)


@dataclass
class LandmarkModel:
    """The 68 landmarks of a head model as a linear function of its coefficients.

    mean: (68, 3) canonical landmarks; basis: (K, 68, 3) landmark displacement per unit coefficient;
    components: (K,) the index of each basis column in the 400 shape + expression coefficients.
    """

    mean: np.ndarray
    basis: np.ndarray
    components: np.ndarray

    @classmethod
    def from_head_model(cls, head_model, n_shape: int = 0, n_expr: int = 0) -> "LandmarkModel":
        """From a :class:`vggheads.headmodel.HeadModel`: the first ``n_shape`` shape and ``n_expr``
        expression components (0, 0 = a rigid template)."""
        faces = np.asarray(head_model.faces, dtype=np.int64)[np.asarray(head_model.lmk_faces, dtype=np.int64)]
        bary = np.asarray(head_model.lmk_bary, dtype=np.float64)
        offset = np.array([0.0, 0.0, CANONICAL_Z_OFFSET])
        mean = np.einsum("lkc,lk->lc", np.asarray(head_model.v_template, dtype=np.float64)[faces], bary) + offset
        comps = np.concatenate([np.arange(n_shape), N_SHAPE + np.arange(n_expr)]).astype(np.int64)
        dirs = np.asarray(head_model.shapedirs, dtype=np.float64)[:, :, comps]  # (V, 3, K)
        # basis[k, l, c] = sum_j bary[l, j] * dirs[faces[l, j], c, k]
        basis = np.einsum("ljck,lj->klc", dirs[faces], bary)
        return cls(mean, basis, comps)

    @property
    def n_components(self) -> int:
        return int(self.basis.shape[0])

    def points(self, coeffs: np.ndarray | None = None) -> np.ndarray:
        """(B, K) coefficients -> (B, 68, 3) canonical landmarks (the mean for None)."""
        if coeffs is None or self.n_components == 0:
            return self.mean[None]
        return self.mean[None] + np.einsum("bk,klc->blc", coeffs, self.basis)


@dataclass
class LandmarkFit:
    R: np.ndarray  # (B, 3, 3) the paper's rotation
    scale: np.ndarray  # (B,) pixels per model unit
    translation: np.ndarray  # (B, 2) pixels
    coeffs: np.ndarray  # (B, K) in LandmarkModel.components order
    projected: np.ndarray  # (B, 68, 2) fitted landmarks in pixels
    rms: np.ndarray  # (B,) weighted RMS residual in pixels

    @property
    def angles(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(yaw, pitch, roll) degrees, each (B,)."""
        return matrix_to_angles(self.R)

    @property
    def yaw(self) -> np.ndarray:
        return self.angles[0]

    @property
    def pitch(self) -> np.ndarray:
        return self.angles[1]

    @property
    def roll(self) -> np.ndarray:
        return self.angles[2]

    def flame_params(self, model: LandmarkModel) -> np.ndarray:
        """(B, 413) parameter vectors in the paper's order (jaw 0, depth translation 0)."""
        B = len(self.scale)
        out = np.zeros((B, N_PARAMS))
        out[:, model.components] = self.coeffs
        r6 = ROT6D.start
        out[:, r6 : r6 + 3] = self.R[:, :, 0]  # rot6d = the first two columns of R
        out[:, r6 + 3 : r6 + 6] = self.R[:, :, 1]
        out[:, TRANSLATION.start : TRANSLATION.start + 2] = self.translation
        out[:, SCALE_INDEX] = self.scale
        return out


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    z = np.zeros(v.shape[:-1])
    x, y, w = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([z, -w, y, w, z, -x, -y, x, z], axis=-1).reshape(*v.shape[:-1], 3, 3)


def _exp_so3(w: np.ndarray) -> np.ndarray:
    """(B, 3) axis-angle -> (B, 3, 3) (Rodrigues)."""
    theta = np.linalg.norm(w, axis=-1, keepdims=True)[..., None]  # (B, 1, 1)
    K = _skew(w / np.maximum(theta[..., 0], 1e-12))
    eye = np.eye(3)[None]
    return eye + np.sin(theta) * K + (1 - np.cos(theta)) * (K @ K)


def _affine_init(X: np.ndarray, x: np.ndarray, w: np.ndarray):
    """Weighted affine camera -> nearest scaled rotation. X (B, L, 3), x (B, L, 2), w (B, L)."""
    sw = w.sum(1, keepdims=True)
    Xc = X - (w[..., None] * X).sum(1, keepdims=True) / sw[..., None]
    xc = x - (w[..., None] * x).sum(1, keepdims=True) / sw[..., None]
    # A (B, 2, 3) = (xc^T W Xc) (Xc^T W Xc)^-1
    XtX = np.einsum("bl,bli,blj->bij", w, Xc, Xc)
    xtX = np.einsum("bl,bli,blj->bij", w, xc, Xc)
    A = xtX @ np.linalg.inv(XtX + 1e-12 * np.eye(3))
    U, S, Vt = np.linalg.svd(A, full_matrices=False)  # U (B,2,2), S (B,2), Vt (B,2,3)
    rows = U @ Vt  # nearest orthonormal rows
    r3 = np.cross(rows[:, 0], rows[:, 1])
    R = np.concatenate([rows, r3[:, None]], axis=1)
    return R, S.mean(1)


def _pose_step(R, s, t, X, x, w, iters: int):
    """Gauss-Newton on (rotation increment, log-scale, translation). Shapes as in fit_landmarks."""
    B, L, _ = X.shape
    for _ in range(iters):
        Y = np.einsum("bij,blj->bli", R, X)  # (B, L, 3)
        r = (s[:, None, None] * Y[..., :2] + t[:, None]) - x  # (B, L, 2)
        # d(s P R X)/d(omega) = -s P [Y]x ; d/d(log s) = s P Y ; d/dt = I
        J_w = -s[:, None, None, None] * _skew(Y)[:, :, :2, :]  # (B, L, 2, 3)
        J_s = (s[:, None, None] * Y[..., :2])[..., None]  # (B, L, 2, 1)
        J_t = np.broadcast_to(np.eye(2), (B, L, 2, 2))
        J = np.concatenate([J_w, J_s, J_t], axis=-1).reshape(B, L * 2, 6)
        ww = np.repeat(w, 2, axis=1)  # (B, 2L)
        H = np.einsum("bn,bni,bnj->bij", ww, J, J) + 1e-9 * np.eye(6)
        g = np.einsum("bn,bni,bn->bi", ww, J, r.reshape(B, L * 2))
        delta = -np.linalg.solve(H, g[..., None])[..., 0]
        R = _exp_so3(delta[:, :3]) @ R
        s = s * np.exp(delta[:, 3])
        t = t + delta[:, 4:]
    return R, s, t


def fit_landmarks(
    points, model: LandmarkModel, weights=None, prior_weight: float = 1e-3, outer_iters: int = 4, pose_iters: int = 8
) -> LandmarkFit:
    """Fit ``model`` to (B, 68, 2) image landmarks (NaN = missing); weights (68,) or (B, 68).

    ``prior_weight``: lambda of ``lambda * ||c||^2`` against the squared residuals of points
    normalised by their box size (one unit = the face size), summed over the 68 points. It plays
    the role of the landmark noise variance: 1e-3 is about 3 % of the face size; at 1 the prior
    dominates and the coefficients hardly move.
    """
    x_pix = np.asarray(points, dtype=np.float64)
    if x_pix.ndim == 2:
        x_pix = x_pix[None]
    B, L, _ = x_pix.shape
    if L != model.mean.shape[0]:
        raise ValueError(f"fit_landmarks: {L} points, the model has {model.mean.shape[0]}")
    w = np.ones((B, L)) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), (B, L)).copy()
    missing = ~np.isfinite(x_pix).all(axis=-1)
    w = np.where(missing, 0.0, w)
    x_pix = np.where(missing[..., None], 0.0, x_pix)
    # normalise each face to its box: centre 0, size 1
    lo = np.where(missing[..., None], np.inf, x_pix).min(1)
    hi = np.where(missing[..., None], -np.inf, x_pix).max(1)
    centre = (lo + hi) / 2
    size = np.maximum(np.sqrt(np.prod(hi - lo, axis=1)), 1e-6)
    x = (x_pix - centre[:, None]) / size[:, None, None]

    K = model.n_components
    coeffs = np.zeros((B, K))
    X = model.points(coeffs if K else None)
    X = np.broadcast_to(X, (B, L, 3))
    R, s = _affine_init(X, x, w)
    Y0 = np.einsum("bij,blj->bli", R, X)[..., :2]
    t = ((w[..., None] * (x - s[:, None, None] * Y0)).sum(1)) / w.sum(1, keepdims=True)
    R, s, t = _pose_step(R, s, t, X, x, w, pose_iters)
    for _ in range(outer_iters if K else 0):
        # linear solve of the coefficients given the pose: x - t - s P R mean = sum_k c_k s P R basis_k
        PRB = s[:, None, None, None] * np.einsum("bij,klj->bkli", R, model.basis)[..., :2]  # (B, K, L, 2)
        A = PRB.reshape(B, K, L * 2).transpose(0, 2, 1)  # (B, 2L, K)
        rhs = (x - t[:, None] - s[:, None, None] * np.einsum("bij,lj->bli", R, model.mean)[..., :2]).reshape(B, L * 2)
        ww = np.repeat(w, 2, axis=1)
        H = np.einsum("bn,bni,bnj->bij", ww, A, A) + prior_weight * np.eye(K)
        g = np.einsum("bn,bni,bn->bi", ww, A, rhs)
        coeffs = np.linalg.solve(H, g[..., None])[..., 0]
        X = model.points(coeffs)
        R, s, t = _pose_step(R, s, t, X, x, w, pose_iters)
    Y = np.einsum("bij,blj->bli", R, X)[..., :2]
    fitted = s[:, None, None] * Y + t[:, None]
    res = ((fitted - x) ** 2).sum(-1)
    rms = np.sqrt((w * res).sum(1) / np.maximum(w.sum(1), 1e-12)) * size
    projected = fitted * size[:, None, None] + centre[:, None]
    return LandmarkFit(
        R=R, scale=s * size, translation=t * size[:, None] + centre, coeffs=coeffs, projected=projected, rms=rms
    )
