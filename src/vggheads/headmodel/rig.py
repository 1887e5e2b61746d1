"""The procedural head model's rig: step 3 of :mod:`vggheads.headmodel.builder`.

Smooth skinning weights (lower face on the jaw), a joint regressor (weighted vertex averages),
the 68-landmark embedding in iBUG order (grid triangles + barycentric coordinates), vertex
subsets (face, head) and colour regions, all on the template of :mod:`.surface`.
"""

from __future__ import annotations

import numpy as np

from . import sdf
from .format import N_LANDMARKS
from .surface import (
    IRIS_ANGLE,
    NECK_AXIS_Z,
    PARTS,
    PUPIL_ANGLE,
    A,
    Grid,
    Mesh,
    _flipped_cells,
    _lip_curve,
    _lip_sdf,
    _mirror,
    cast,
    direction_angles,
)

ROOT, NECK, JAW, LEFT_EYE, RIGHT_EYE = range(5)


def kinematic_tree() -> np.ndarray:
    """(2, 5) FLAME's ``kintree_table``: each joint's parent (-1 for the root) over its id; the neck
    hangs from the root, the jaw and both eyes from the neck."""
    return np.array([[-1, ROOT, NECK, NECK, NECK], [ROOT, NECK, JAW, LEFT_EYE, RIGHT_EYE]], dtype=np.int64)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _grid_angles(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """(theta, phi) of every vertex seen from the ray origin (the main surface's grid angles)."""
    return direction_angles(mesh.vertices)


def skinning_weights(mesh: Mesh) -> np.ndarray:
    """(V, 5) weights: lower face on the jaw, lower neck on the root, eyeballs on the eyes, the rest on the neck joint."""
    v, part, grid = mesh.vertices, mesh.part, mesh.grid
    theta, phi = _grid_angles(mesh)
    theta_m = grid.theta[grid.mouth_row]
    row_gap = np.diff(grid.theta).min()
    corner = np.abs(grid.phi[grid.slit_cols]).max() + 1e-6
    # below the mouth line: a hard step inside the slit, widening to a soft blend past the corners
    width = row_gap + np.deg2rad(12.0) * _smoothstep((np.abs(phi) - corner) / np.deg2rad(14.0))
    below = _smoothstep((theta - theta_m) / width)
    below = np.where(mesh.lip_side > 0, np.where(np.abs(phi) < corner, 0.0, below), below)
    below = np.where(mesh.lip_side < 0, np.maximum(below, (np.abs(phi) < corner).astype(float)), below)
    lateral = 1.0 - _smoothstep((np.abs(phi) - np.deg2rad(58.0)) / np.deg2rad(26.0))
    # under the chin the jaw hands over to the neck over ~4 cm, towards the throat
    throat = 1.0 - _smoothstep(
        (A.chin_c[1] - A.chin_r[1] + 0.004 - v[:, 1]) / 0.02 + _smoothstep((A.chin_c[2] - v[:, 2]) / 0.05)
    )
    w_jaw = below * lateral * np.clip(throat, 0.0, 1.0)
    w_root = _smoothstep((A.neck_joint[1] - 0.02 - v[:, 1]) / 0.06) * (v[:, 2] < 0.03 + 0.4 * (v[:, 1] + 0.12))
    w_root = w_root.astype(float)
    w_jaw = np.where(part == 0, w_jaw * (1.0 - w_root), 0.0)
    cavity = part == PARTS.index("mouth")
    w_jaw[cavity] = _smoothstep((A.mouth_cavity_c[1] + 0.004 - v[cavity, 1]) / 0.008)
    W = np.zeros((len(v), 5))
    W[:, JAW] = w_jaw
    W[:, ROOT] = np.where(part == 0, w_root, 0.0)
    W[:, NECK] = np.clip(1.0 - W[:, JAW] - W[:, ROOT], 0.0, 1.0)
    for eye, part_name in ((LEFT_EYE, "left_eye"), (RIGHT_EYE, "right_eye")):
        sel = part == PARTS.index(part_name)
        W[sel] = 0.0
        W[sel, eye] = 1.0
    return W / W.sum(1, keepdims=True)


def _ring_weights(v: np.ndarray, candidates: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative weights (summing to 1) on ``candidates`` whose weighted mean of ``v`` is ``target``.

    Minimises the weights' spread subject to the mean (a small least-squares problem with two
    equality constraints), then clips tiny negatives; the result is checked by a test.
    """
    P = v[candidates]  # (n, 3)
    n = len(candidates)
    A_eq = np.vstack([P.T, np.ones(n)])  # (4, n)
    b_eq = np.concatenate([target, [1.0]])
    w0 = np.full(n, 1.0 / n)
    # w = w0 + A^T lambda, the minimum-norm correction that meets the constraints
    lam = np.linalg.lstsq(A_eq @ A_eq.T, b_eq - A_eq @ w0, rcond=None)[0]
    w = np.clip(w0 + A_eq.T @ lam, 0.0, None)
    return w / w.sum()


def joint_regressor(mesh: Mesh) -> np.ndarray:
    """(5, V): each joint a weighted mean of nearby surface vertices (so it follows the shape)."""
    v, part = mesh.vertices, mesh.part
    head = np.flatnonzero(part == 0)
    J = np.zeros((5, len(v)))
    on_neck = np.hypot(v[head, 0] / A.neck_r[0], (v[head, 2] - NECK_AXIS_Z) / A.neck_r[1]) < 1.25
    for joint, target in ((ROOT, A.root_joint), (NECK, A.neck_joint)):
        target = np.asarray(target)
        ring = head[on_neck & (np.abs(v[head, 1] - target[1]) < 0.008)]
        J[joint, ring] = _ring_weights(v, ring, target)
    # jaw: vertices over both temporomandibular joints, just in front of the ears
    target = np.asarray(A.jaw_joint)
    near = head[(np.abs(v[head, 1] - target[1]) < 0.012) & (np.abs(v[head, 2] - target[2]) < 0.012)]
    near = near[np.abs(v[near, 0]) > 0.05]
    J[JAW, near] = _ring_weights(v, near, target)
    for joint, part_name in ((LEFT_EYE, "left_eye"), (RIGHT_EYE, "right_eye")):
        sel = np.flatnonzero(part == PARTS.index(part_name))
        centre = np.asarray(A.eye_c) if joint == LEFT_EYE else _mirror(A.eye_c)
        J[joint, sel] = _ring_weights(v, sel, centre)
    return J


def _cell_triangle(grid: Grid, r: int, c: int, fr: float, fc: float) -> tuple[int, np.ndarray]:
    """Triangle id and barycentric coordinates of a point at (fr, fc) inside grid cell (r, c).

    Matches the triangle order of :func:`_grid_faces`: the crown fan, then per row the cells'
    first triangles followed by their second triangles.
    """
    C = grid.n_cols
    first, second = C + r * 2 * C + c, C + r * 2 * C + C + c
    if _flipped_cells(grid)[c]:  # triangles (a, c, d) and (a, d, b)
        if fr >= fc:
            return first, np.array([1.0 - fr, fr - fc, fc])
        return second, np.array([1.0 - fc, fr, fc - fr])
    if fr + fc <= 1.0:  # triangles (a, c, b) and (b, c, d)
        return first, np.array([1.0 - fr - fc, fr, fc])
    return second, np.array([1.0 - fr, 1.0 - fc, fr + fc - 1.0])


def _embed(grid: Grid, point: np.ndarray, lip: str | None = None) -> tuple[int, np.ndarray]:
    """The grid triangle crossed by the ray from the origin through ``point``, and its barycentric coordinates.

    ``lip`` = "upper" / "lower" pins a point on the mouth line to that lip's side of the slit.
    """
    theta, phi = (float(a[0]) for a in direction_angles(point))
    if lip is not None:
        theta = grid.theta[grid.mouth_row] + (-1e-9 if lip == "upper" else 1e-9)
    r, c, fr, fc = grid.locate(theta, phi)
    return _cell_triangle(grid, r, c, float(np.clip(fr, 0, 1)), float(np.clip(fc, 0, 1)))


def _front_points(xy) -> np.ndarray:
    """Where rays from (x, y, 0) along +z leave the head: the surface seen from the front, (N, 3)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    starts = np.concatenate([xy, np.zeros((len(xy), 1))], axis=1)
    dirs = np.tile([0.0, 0.0, 1.0], (len(xy), 1))
    return starts + cast(starts, dirs)[:, None] * dirs


def _contour_points(alphas_deg: np.ndarray) -> np.ndarray:
    """Points (N, 3) of the jaw contour: rays from the lower face's centre, turning from the right
    cheek (alpha = 0) under the chin (90) to the left cheek (180), tilted forward near the chin."""
    a = np.deg2rad(np.asarray(alphas_deg, dtype=float))
    d = np.stack([-np.cos(a), -np.sin(a), 0.75 * np.clip(np.sin(a), 0.0, None) + 0.12], axis=1)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    start = np.tile([0.0, -0.012, 0.008], (len(a), 1))
    return start + cast(start, d)[:, None] * d


def landmark_points() -> list[tuple[np.ndarray, str | None]]:
    """The 68 landmarks (iBUG order) as design-frame points near the surface (and a lip side for the inner lips)."""
    contour = _contour_points(np.linspace(-12.0, 192.0, 17))  # 0-16, right to left
    brow = [(-0.052, 0.045), (-0.043, 0.0515), (-0.032, 0.0545), (-0.021, 0.0535), (-0.011, 0.050)]
    front_xy = brow + [(-x, y) for x, y in reversed(brow)]  # 17-26
    front_xy += [(0.0, y) for y in (0.031, 0.018, 0.005, -0.008)]  # 27-30 bridge to tip
    front_xy += [(-0.0135, -0.019), (-0.007, -0.0215), (0.0, -0.023), (0.007, -0.0215), (0.0135, -0.019)]  # 31-35
    # 36-41 right eye, 42-47 left eye: corners and lid margins on the almond outline, just on the lid
    a, b = A.lid_half_width, A.lid_half_height
    R = (a * a + b * b) / (2.0 * b)
    lid = lambda dx: (b - R) + np.sqrt(R * R - dx * dx) + 0.0006
    for sign in (-1.0, 1.0):
        cx, cy = sign * A.eye_c[0], A.eye_c[1] - 0.0008
        outer, inner = cx + sign * a * 0.97, cx - sign * a * 0.97
        first, last = (outer, inner) if sign < 0 else (inner, outer)  # iBUG goes left to right in the image
        xs_up = (cx - a / 3, cx + a / 3)
        front_xy += [
            (first, cy),
            (xs_up[0], cy + lid(xs_up[0] - cx)),
            (xs_up[1], cy + lid(xs_up[1] - cx)),
            (last, cy),
            (xs_up[1], cy - lid(xs_up[1] - cx)),
            (xs_up[0], cy - lid(xs_up[0] - cx)),
        ]
    # 49-53 upper outer lip, 55-59 lower outer lip
    w, m = A.mouth_half_width, A.mouth_y
    upper = lambda t: m + 0.0042 + A.upper_lip_r * (0.55 + 0.45 * np.sqrt(1 - t * t)) * 0.95
    lower = lambda t: m - 0.0052 - A.lower_lip_r * (0.55 + 0.45 * np.sqrt(1 - t * t)) * 0.95
    front_xy += [(t * w, upper(t)) for t in (-0.6, -0.25, 0.0, 0.25, 0.6)]
    front_xy += [(t * w, lower(t)) for t in (0.6, 0.25, 0.0, -0.25, -0.6)]
    front = list(_front_points(front_xy))
    lip_line = lambda t: _lip_curve(np.array([t]), m, A.lip_front_z)[0]
    pts: list[tuple[np.ndarray, str | None]] = [(p, None) for p in contour]
    pts += [(front.pop(0), None) for _ in range(10 + 4 + 5 + 12)]  # brows, nose, eyes
    pts.append((lip_line(-1.0), "upper"))  # 48 right corner
    pts += [(front.pop(0), None) for _ in range(5)]  # 49-53
    pts.append((lip_line(1.0), "upper"))  # 54 left corner
    pts += [(front.pop(0), None) for _ in range(5)]  # 55-59
    pts += [(lip_line(t), "upper") for t in (-1.0, -0.5, 0.0, 0.5, 1.0)]  # 60-64
    pts += [(lip_line(t), "lower") for t in (0.5, 0.0, -0.5)]  # 65-67
    assert len(pts) == N_LANDMARKS and not front
    return pts


def landmark_embedding(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """(lmk_faces (68,), lmk_bary (68, 3)) on the template's grid triangles."""
    faces, bary = zip(*(_embed(mesh.grid, p, lip) for p, lip in landmark_points()))
    return np.array(faces, dtype=np.int64), np.array(bary, dtype=np.float32)


def _interp_deg(x_deg: np.ndarray, table: list[tuple[float, float]]) -> np.ndarray:
    xs, ys = zip(*table)
    return np.deg2rad(np.interp(x_deg, xs, ys))


HAIRLINE = [
    (0, 38),
    (40, 42),
    (60, 52),
    (72, 68),
    (80, 56),
    (95, 52),
    (115, 70),
    (140, 95),
    (180, 108),
]  # |phi| -> theta, degrees


def _neck_cut(z: np.ndarray) -> np.ndarray:
    """Height below which the main surface counts as neck: under the jaw in front, the nape behind."""
    return -0.105 - 0.25 * (z - 0.05)


def vertex_sets(mesh: Mesh, lmk_faces: np.ndarray, lmk_bary: np.ndarray) -> tuple[dict, dict]:
    """(subsets, regions) of the template: subsets for losses and metrics, regions for colouring."""
    v, part = mesh.vertices, mesh.part
    main = part == 0
    theta, phi = _grid_angles(mesh)
    scalp = main & (theta < _interp_deg(np.rad2deg(np.abs(phi)), HAIRLINE))
    neck = main & (v[:, 1] < _neck_cut(v[:, 2]))
    # face: between the hairline and the jaw contour (the 17 contour landmarks, seen from the front)
    lmk = np.einsum("lkc,lk->lc", v[mesh.faces[lmk_faces]], lmk_bary)
    contour = lmk[:17][np.argsort(lmk[:17, 0])]
    above_jaw = v[:, 1] > np.interp(v[:, 0], contour[:, 0], contour[:, 1])
    inside_jaw = np.abs(v[:, 0]) < np.abs(contour[:, 0]).max()
    face = main & ~scalp & ~neck & above_jaw & inside_jaw & (v[:, 2] > 0.0) & (np.abs(phi) < np.deg2rad(66))
    head = main & ~neck
    eyes = (part == PARTS.index("left_eye")) | (part == PARTS.index("right_eye"))
    polar = np.nan_to_num(mesh.eye_polar, nan=np.pi)
    brow_d = np.full(len(v), np.inf)
    for side in (np.asarray, _mirror):
        brow_d = np.minimum.reduce(
            [
                brow_d,
                sdf.capsule(v, side(A.brow_in), side(A.brow_mid), A.brow_r),
                sdf.capsule(v, side(A.brow_mid), side(A.brow_out), A.brow_r),
            ]
        )
    nose_d = sdf.round_cone(v, A.nose_root, A.nose_tip, A.nose_root_r, A.nose_tip_r)
    for side in (np.asarray, _mirror):
        nose_d = np.minimum(nose_d, sdf.sphere(v, side(A.ala), A.ala_r))
    lips_d = np.minimum(_lip_sdf(v, True), _lip_sdf(v, False))
    regions = {
        "scalp": scalp & ~face,
        "brows": main & (brow_d < 0.0035) & (v[:, 1] > A.brow_in[1] - 0.006) & ~scalp,
        "nose": main & (nose_d < 0.0025),
        "lips": main & (lips_d < 0.002) & (np.abs(v[:, 1] - A.mouth_y) < 0.016),
        "eyes": eyes,
        "iris": eyes & (polar < IRIS_ANGLE),
        "pupil": eyes & (polar < PUPIL_ANGLE),
        "ears": (part == PARTS.index("left_ear")) | (part == PARTS.index("right_ear")),
        "neck": neck,
        "mouth_interior": part == PARTS.index("mouth"),
    }
    subsets = {"face": face, "head": head}
    as_idx = lambda sets: {k: np.flatnonzero(m).astype(np.int64) for k, m in sets.items()}
    return as_idx(subsets), as_idx(regions)
