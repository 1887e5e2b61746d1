"""The project's own open head model, built procedurally in FLAME's format.

Why: FLAME cannot be redistributed, yet every stage needs a head model. This one has FLAME's
layout (300 shape + 100 expression components, 36 pose correctives, 5 joints: root, neck, jaw,
left eye, right eye), scale (metres) and frame (y up, z out of the face), about 5,000 vertices
and 10,000 triangles, so code and benchmarks written against it run unchanged on FLAME.

How, in four steps (all in the "design" frame: origin between the ear canals; the template is
shifted by -0.05 on z so that the paper's +0.05 brings the head centre back to the origin):

1. The surface is a signed-distance field (skull, face, jaw, chin, nose, brows, cheekbones,
   lips, neck; eye sockets with almond-shaped lid openings carved in). A latitude-longitude grid
   of rays from a point inside the head (the neck rows are parallel rays sliding down the neck)
   finds the surface, so the mesh is a clean quad grid, denser on the face. The mouth is a slit
   in the grid (the lower lip's vertices are duplicates of the upper lip's, skinned to the jaw).
2. Separate closed parts: two eyeballs (skinned to the eye joints), two ears (flattened shells
   with a rim and a bowl), and an inward-facing mouth cavity seen when the jaw opens.
3. Rig: smooth skinning weights (lower face on the jaw), a joint regressor (weighted vertex
   averages), the 68-landmark embedding in iBUG order (grid triangles + barycentric coordinates),
   vertex subsets (face, head) and colour regions.
4. Components: shape = a few anatomical modes (size, width, face length, nose, jaw, chin...)
   then random smooth fields, coarse to fine, mostly left-right symmetric; expression = semantic
   face modes (smile, lips part, brow raise...) then random smooth fields masked to the face.
   Each set is orthonormalised (QR, as V*3 vectors, in that order) and scaled by a decreasing
   standard deviation. The seed drives only the random fields; the template and rig are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np

from . import sdf
from .format import N_LANDMARKS, HeadModel

TEMPLATE_SHIFT = np.array([0.0, 0.0, -0.05])  # design frame -> template frame (undone by the paper's +0.05)
RAY_ORIGIN = np.array([0.0, -0.025, -0.015])   # every ray of the main grid starts here (inside, below the skull centre)
NECK_AXIS_Z = -0.026                           # neck cylinder axis (x = 0), metres


@dataclass(frozen=True)
class Anatomy:
    """Sizes and positions of the head's parts (design frame, metres; x to the subject's left).

    Left-side parts are given; the right side is their mirror image.
    """

    cranium_c: tuple = (0.0, 0.028, -0.016)
    cranium_r: tuple = (0.074, 0.097, 0.098)
    face_c: tuple = (0.0, -0.015, 0.018)
    face_r: tuple = (0.066, 0.070, 0.062)
    muzzle_c: tuple = (0.0, -0.047, 0.058)          # maxilla and teeth under the lips
    muzzle_r: tuple = (0.034, 0.032, 0.033)
    cheek_c: tuple = (0.047, 0.004, 0.050)
    cheek_r: tuple = (0.020, 0.015, 0.016)
    ramus_top: tuple = (0.060, -0.010, -0.005)
    jaw_angle: tuple = (0.057, -0.062, 0.000)       # gonion
    jaw_front: tuple = (0.020, -0.093, 0.058)
    ramus_r: float = 0.012
    jaw_r: float = 0.013
    chin_c: tuple = (0.0, -0.085, 0.069)
    chin_r: tuple = (0.024, 0.017, 0.019)
    neck_r: tuple = (0.054, 0.050)                  # half width (x), half depth (z)
    neck_top_y: float = -0.02
    nose_root: tuple = (0.0, 0.034, 0.076)          # inside the bridge, at the nasion
    nose_tip: tuple = (0.0, -0.008, 0.101)          # centre of the tip's ball
    nose_root_r: float = 0.006
    nose_tip_r: float = 0.011
    ala: tuple = (0.0145, -0.016, 0.086)            # nostril wing centre
    ala_r: float = 0.0085
    brow_in: tuple = (0.010, 0.046, 0.072)          # brow ridge: inner end, arch, outer end
    brow_mid: tuple = (0.030, 0.050, 0.068)
    brow_out: tuple = (0.050, 0.047, 0.057)
    brow_r: float = 0.0075
    eye_c: tuple = (0.0315, 0.027, 0.060)           # eyeball centre
    eye_r: float = 0.0118
    orbit_r: tuple = (0.020, 0.014, 0.012)          # the hollow around the eye
    lids_r: tuple = (0.021, 0.016, 0.0175)          # the mound of the lids over the eyeball
    lid_half_width: float = 0.0145                  # palpebral fissure half length
    lid_half_height: float = 0.0047
    mouth_y: float = -0.049                         # stomion height
    mouth_half_width: float = 0.0235
    upper_lip_r: float = 0.0045
    lower_lip_r: float = 0.0055
    lip_front_z: float = 0.092                      # z of the lips' centre line at the midline
    lip_corner_z: float = 0.081
    ear_c: tuple = (0.070, 0.004, -0.016)           # centre (its x is found on the skull's surface)
    ear_half_height: float = 0.031
    ear_half_width: float = 0.0175
    ear_half_thickness: float = 0.004
    ear_tilt_deg: float = 15.0                      # top of the ear leans back
    ear_flare_deg: float = 18.0                     # back edge stands off the skull
    mouth_cavity_c: tuple = (0.0, -0.051, 0.060)
    mouth_cavity_r: tuple = (0.017, 0.012, 0.020)
    jaw_joint: tuple = (0.0, -0.008, 0.0)           # between the temporomandibular joints
    neck_joint: tuple = (0.0, -0.055, NECK_AXIS_Z)
    root_joint: tuple = (0.0, -0.13, NECK_AXIS_Z)


A = Anatomy()


def _mirror(p) -> np.ndarray:
    return np.asarray(p, dtype=float) * np.array([-1.0, 1.0, 1.0])


def _lip_curve(t: np.ndarray, y: float, front_z: float) -> np.ndarray:
    """Points (len(t), 3) along a lip from the right corner (t=-1) to the left corner (t=1)."""
    x = t * A.mouth_half_width
    z = A.lip_corner_z + (front_z - A.lip_corner_z) * (1.0 - t**2)
    return np.stack([x, np.full_like(t, y), z], axis=1)


def _lip_sdf(p: np.ndarray, upper: bool) -> np.ndarray:
    """Distance to a lip: a chain of capsules along the curved lip line."""
    t = np.linspace(-1.0, 1.0, 9)
    y = A.mouth_y + (0.0042 if upper else -0.0052)
    pts = _lip_curve(t, y, A.lip_front_z - (0.0 if upper else 0.0015))
    r = A.upper_lip_r if upper else A.lower_lip_r
    radii = r * (0.55 + 0.45 * np.sqrt(1.0 - t**2))
    d = np.full(len(p), np.inf)
    for i in range(len(t) - 1):
        d = np.minimum(d, sdf.round_cone(p, pts[i], pts[i + 1], radii[i], radii[i + 1]))
    return d


def _almond(p: np.ndarray, centre) -> np.ndarray:
    """2D distance (in x, y) to the lid opening around an eye: the intersection of two discs."""
    a, b = A.lid_half_width, A.lid_half_height
    R = (a * a + b * b) / (2.0 * b)
    q = p[:, :2] - np.asarray(centre)[:2]
    up = np.hypot(q[:, 0], q[:, 1] - (b - R)) - R        # upper lid arc (disc centred below)
    down = np.hypot(q[:, 0], q[:, 1] + (b - R)) - R      # lower lid arc (disc centred above)
    return np.maximum(up, down)


def _pair(fn) -> np.ndarray:
    """A left part and its mirror image, joined by an exact min so the field stays symmetric."""
    return np.minimum(fn(np.asarray), fn(_mirror))


def head_sdf(p: np.ndarray) -> np.ndarray:
    """Signed distance (N,) of the head-and-neck surface at design-frame points p (N, 3).

    Paired parts are joined with an exact min before any smooth blend, so the field (and the
    mesh) is exactly left-right symmetric.
    """
    d = sdf.ellipsoid(p, A.cranium_c, A.cranium_r)
    d = sdf.smooth_union(d, sdf.ellipsoid(p, A.face_c, A.face_r), 0.02)
    d = sdf.smooth_union(d, sdf.ellipsoid(p, A.muzzle_c, A.muzzle_r), 0.02)
    d = sdf.smooth_union(d, _pair(lambda side: sdf.ellipsoid(p, side(A.cheek_c), A.cheek_r)), 0.024)
    mandible = _pair(lambda side: sdf.smooth_union(sdf.capsule(p, side(A.jaw_angle), side(A.jaw_front), A.jaw_r),
                                                   sdf.capsule(p, side(A.ramus_top), side(A.jaw_angle), A.ramus_r), 0.01))
    jaw = sdf.smooth_union(sdf.ellipsoid(p, A.chin_c, A.chin_r), mandible, 0.01)
    d = sdf.smooth_union(d, jaw, 0.034)
    # neck: an elliptic cylinder, blended into the skull and jaw
    q = (p - np.array([0.0, 0.0, NECK_AXIS_Z])) / np.array([A.neck_r[0], 1.0, A.neck_r[1]])
    neck = (np.hypot(q[:, 0], q[:, 2]) - 1.0) * min(A.neck_r)
    neck = np.maximum(neck, p[:, 1] - A.neck_top_y)
    d = sdf.smooth_union(d, neck, 0.03)
    nose = sdf.round_cone(p, A.nose_root, A.nose_tip, A.nose_root_r, A.nose_tip_r)
    nose = sdf.smooth_union(nose, _pair(lambda side: sdf.sphere(p, side(A.ala), A.ala_r)), 0.007)
    d = sdf.smooth_union(d, nose, 0.014)
    brows = _pair(lambda side: np.minimum(sdf.capsule(p, side(A.brow_in), side(A.brow_mid), A.brow_r),
                                          sdf.capsule(p, side(A.brow_mid), side(A.brow_out), A.brow_r)))
    d = sdf.smooth_union(d, brows, 0.02)
    d = sdf.smooth_union(d, np.minimum(_lip_sdf(p, True), _lip_sdf(p, False)), 0.007)
    # eyes: a hollow, the lids' mound over the eyeball, and the almond-shaped opening between the lids
    hollow = _pair(lambda side: sdf.ellipsoid(p, side(A.eye_c) + np.array([0.0, -0.002, 0.008]), A.orbit_r))
    d = sdf.smooth_subtract(d, hollow, 0.012)
    lids = _pair(lambda side: sdf.ellipsoid(p, side(A.eye_c) + np.array([0.0, 0.0, -0.004]), A.lids_r))
    d = sdf.smooth_union(d, lids, 0.006)
    opening = _pair(lambda side: np.maximum(_almond(p, side(A.eye_c) + np.array([0.0, -0.0008, 0.0])),
                                            side(A.eye_c)[2] - p[:, 2]))
    return sdf.smooth_subtract(d, opening, 0.0015)


# ----------------------------------------------------------------------------------------------
# 1. the main surface: a ray grid


def _density_map(n: int, lo: float, hi: float, density, include_hi: bool) -> np.ndarray:
    """n values in [lo, hi] spaced inversely to ``density`` (a function of the value)."""
    x = np.linspace(lo, hi, 4001)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density(x[1:]) + density(x[:-1])) * np.diff(x))])
    cdf /= cdf[-1]
    u = np.linspace(0.0, 1.0, n + (0 if include_hi else 1))[: n]
    return np.interp(u, cdf, x)


N_ROWS = 62
N_COLS = 68
THETA_TOP = np.deg2rad(4.0)        # first ring around the crown vertex
THETA_BOTTOM = np.deg2rad(158.0)   # last ring: the bottom of the neck (cut on a slant, like FLAME's)


def _row_density(theta: np.ndarray) -> np.ndarray:
    deg = np.rad2deg(theta)
    return 0.5 + 1.7 * np.exp(-(((deg - 92.0) / 46.0) ** 4))


def _col_density(phi: np.ndarray) -> np.ndarray:
    deg = np.rad2deg(np.abs(phi))
    return 0.45 + 2.0 * np.exp(-((deg / 50.0) ** 4))


@dataclass
class Grid:
    """The main surface's ray grid: row r, column c -> vertex ``1 + r * n_cols + c`` (vertex 0 is the crown)."""

    theta: np.ndarray        # (n_rows,) polar angle of each row's rays from +y, seen from RAY_ORIGIN
    phi: np.ndarray          # (n_cols,) azimuth of each column (0 = +z, pi/2 = +x)
    mouth_row: int
    slit_cols: np.ndarray    # columns strictly between the mouth corners

    @property
    def n_rows(self) -> int:
        return len(self.theta)

    @property
    def n_cols(self) -> int:
        return len(self.phi)

    @property
    def n_vertices(self) -> int:
        return 1 + self.n_rows * self.n_cols

    def index(self, r, c):
        return 1 + np.asarray(r) * self.n_cols + np.mod(c, self.n_cols)

    def directions(self) -> np.ndarray:
        """(n_vertices, 3) unit ray directions, crown first."""
        th = np.repeat(self.theta, self.n_cols)
        ph = np.tile(self.phi, self.n_rows)
        return np.concatenate([[[0.0, 1.0, 0.0]], _ray_dirs(th, ph)])

    def locate(self, theta: float, phi: float) -> tuple[int, int, float, float]:
        """Grid cell (row, col) and fractional position (fr, fc) in it of a ray direction."""
        if not self.theta[0] <= theta < self.theta[-1]:
            raise ValueError("direction outside the grid's rows")
        r = int(np.searchsorted(self.theta, theta, side="right") - 1)
        fr = (theta - self.theta[r]) / (self.theta[r + 1] - self.theta[r])
        ext = np.concatenate([self.phi, [self.phi[0] + 2 * np.pi]])
        phi = (phi - self.phi[0]) % (2 * np.pi) + self.phi[0]
        c = int(np.searchsorted(ext, phi, side="right") - 1)
        fc = (phi - ext[c]) / (ext[c + 1] - ext[c])
        return r, c, float(fr), float(fc)


def _ray_dirs(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    st = np.sin(theta)
    return np.stack([st * np.sin(phi), np.cos(theta), st * np.cos(phi)], axis=-1)


def direction_angles(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(theta, phi) of design-frame points (N, 3) seen from RAY_ORIGIN."""
    q = np.atleast_2d(p) - RAY_ORIGIN
    theta = np.arccos(np.clip(q[:, 1] / np.linalg.norm(q, axis=1), -1.0, 1.0))
    return theta, np.arctan2(q[:, 0], q[:, 2])


def cast(origins: np.ndarray, dirs: np.ndarray, t_max: float = 0.3, step: float = 0.001) -> np.ndarray:
    """Distance (N,) along each ray to its outermost exit from the solid (origins inside).

    The outermost exit, not the first: a ray to the upper lid crosses the eye's opening on the
    way, and the surface seen from outside is the lid.
    """
    ts = np.arange(step, t_max, step)
    t_lo = np.full(len(origins), np.nan)
    inside_prev = np.ones(len(origins), dtype=bool)
    for t in ts:  # march outwards, remembering the last inside -> outside step
        inside = head_sdf(origins + t * dirs) <= 0
        t_lo = np.where(inside_prev & ~inside, t - step, t_lo)
        inside_prev = inside
    if np.isnan(t_lo).any() or inside_prev.any():
        raise RuntimeError("a ray of the head grid never left the head surface")
    t_hi = t_lo + step
    for _ in range(24):  # bisection between the last inside and the first outside sample
        mid = 0.5 * (t_lo + t_hi)
        out = head_sdf(origins + mid[:, None] * dirs) > 0
        t_hi = np.where(out, mid, t_hi)
        t_lo = np.where(out, t_lo, mid)
    return 0.5 * (t_lo + t_hi)


def _build_grid() -> Grid:
    theta = _density_map(N_ROWS, THETA_TOP, THETA_BOTTOM, _row_density, include_hi=True)
    # snap the row nearest the mouth line onto it, so the mouth is a row of the grid
    theta_m = float(direction_angles(np.array([0.0, A.mouth_y, A.lip_front_z]))[0][0])
    m = int(np.argmin(np.abs(theta - theta_m)))
    theta[m] = theta_m
    # left-right symmetric columns, one on the midline in front and one behind
    half = _density_map(N_COLS // 2 + 1, 0.0, np.pi, _col_density, include_hi=True)
    phi = np.concatenate([-half[1:-1][::-1], half])
    corner_phi = float(direction_angles(np.array([A.mouth_half_width, A.mouth_y, A.lip_corner_z]))[1][0])
    slit = np.flatnonzero(np.abs(phi) < corner_phi - 1e-9)
    return Grid(theta=theta, phi=phi, mouth_row=m, slit_cols=slit)


def _grid_faces(grid: Grid, lower_lip: dict[int, int]) -> np.ndarray:
    """Triangles of the grid, counter-clockwise from outside; the cells under the mouth row use
    the lower-lip duplicates ``lower_lip[col] -> vertex`` so the mouth is a slit."""
    R, C = grid.n_rows, grid.n_cols
    cols = np.arange(C)
    faces = [np.stack([np.zeros(C, dtype=np.int64), grid.index(0, cols), grid.index(0, cols + 1)], axis=1)]
    for r in range(R - 1):
        a, b = grid.index(r, cols), grid.index(r, cols + 1)
        c, d = grid.index(r + 1, cols), grid.index(r + 1, cols + 1)
        if r == grid.mouth_row:
            a = np.array([lower_lip.get(int(col), v) for col, v in zip(cols, a)])
            b = np.array([lower_lip.get(int((col + 1) % C), v) for col, v in zip(cols, b)])
        # split each quad along the diagonal that makes the triangulation mirror-symmetric
        flip = _flipped_cells(grid)[None].T
        faces.append(np.where(flip, np.stack([a, c, d], axis=1), np.stack([a, c, b], axis=1)))
        faces.append(np.where(flip, np.stack([a, d, b], axis=1), np.stack([b, c, d], axis=1)))
    return np.concatenate(faces)


def _flipped_cells(grid: Grid) -> np.ndarray:
    """(n_cols,) True for the cells (between column c and c + 1) on the right side (x < 0),
    which use the mirror image of the left side's diagonal."""
    nxt = np.roll(grid.phi, -1)
    return (grid.phi < 0) & (nxt <= 0)


def _sphere_grid(n_rows: int, n_cols: int, row_angles: np.ndarray | None = None):
    """Unit sphere with poles on +z (vertex 0) and -z (last vertex): (points, faces), faces outward."""
    polar = row_angles if row_angles is not None else np.linspace(0, np.pi, n_rows + 2)[1:-1]
    az = np.linspace(0, 2 * np.pi, n_cols, endpoint=False)
    st = np.sin(polar)[:, None]
    ring = np.stack([st * np.cos(az), st * np.sin(az), np.repeat(np.cos(polar)[:, None], n_cols, 1)], axis=-1)
    pts = np.concatenate([[[0.0, 0.0, 1.0]], ring.reshape(-1, 3), [[0.0, 0.0, -1.0]]])
    idx = lambda r, c: 1 + r * n_cols + np.mod(c, n_cols)
    cols = np.arange(n_cols)
    faces = [np.stack([np.zeros(n_cols, dtype=np.int64), idx(0, cols), idx(0, cols + 1)], axis=1)]
    for r in range(len(polar) - 1):
        faces.append(np.stack([idx(r, cols), idx(r + 1, cols), idx(r + 1, cols + 1)], axis=1))
        faces.append(np.stack([idx(r, cols), idx(r + 1, cols + 1), idx(r, cols + 1)], axis=1))
    last = len(pts) - 1
    faces.append(np.stack([np.full(n_cols, last), idx(len(polar) - 1, cols + 1), idx(len(polar) - 1, cols)], axis=1))
    faces = np.concatenate(faces)
    # make every triangle face outwards (normal along the position from the centre)
    n = np.cross(pts[faces[:, 1]] - pts[faces[:, 0]], pts[faces[:, 2]] - pts[faces[:, 0]])
    flip = (n * pts[faces].mean(1)).sum(1) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return pts, faces


EYE_ROWS = np.array([0.16, 0.34, 0.52, 0.62, 0.80, 1.05, 1.35, 1.70, 2.10, 2.50, 2.85])  # polar angles, dense at the iris
EYE_COLS = 18
IRIS_ANGLE = 0.56    # radians from the gaze axis: iris edge (about 6 mm on a 12 mm eyeball)
PUPIL_ANGLE = 0.22


def _eyeball(side) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points, faces, polar angle from the gaze axis) of one eyeball, looking along +z."""
    pts, faces = _sphere_grid(len(EYE_ROWS), EYE_COLS, EYE_ROWS)
    polar = np.arccos(np.clip(pts[:, 2], -1, 1))
    return side(A.eye_c) + A.eye_r * pts, faces, polar


EAR_ROWS = 9
EAR_COLS = 16


def _ear_frame(sign: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit axes (forward-in-plane, up-in-plane, outward normal) of the left (+1) or right (-1) ear."""
    tilt, flare = np.deg2rad(A.ear_tilt_deg), np.deg2rad(A.ear_flare_deg)
    up = np.array([0.0, np.cos(tilt), -np.sin(tilt)])              # leans back
    fwd = np.array([0.0, np.sin(tilt), np.cos(tilt)])
    out = np.array([sign, 0.0, 0.0])
    # flare: turn the ear about its up axis so its back edge stands off the head
    fwd_f = np.cos(flare) * fwd - np.sin(flare) * out
    out_f = np.cross(fwd_f, up) * sign
    out_f = out_f * np.sign(out_f[0] * sign)
    return fwd_f, up, out_f


def _ear(sign: float) -> tuple[np.ndarray, np.ndarray]:
    """(points, faces) of one ear: a flattened closed shell with a rim and a bowl on its outer side."""
    pts, faces = _sphere_grid(EAR_ROWS, EAR_COLS)
    # sphere z -> ear normal; sphere x -> back-to-front; sphere y -> down-to-up
    sx, sy, sn = pts[:, 0], pts[:, 1], pts[:, 2]
    width = A.ear_half_width * (0.78 + 0.22 * sy) * (1.0 - 0.12 * sy**2)   # narrower lobe
    rho = np.hypot(sx, sy)
    rim = 0.0042 * np.exp(-(((rho - 0.86) / 0.13) ** 2))
    bowl = -0.0055 * np.exp(-(((sx - 0.25) ** 2 + (sy + 0.1) ** 2) / 0.16))
    relief = np.where(sn > 0, (rim + bowl) * sn, 0.0)
    fwd, up, out = _ear_frame(sign)
    local_a = sx * width
    local_b = sy * A.ear_half_height
    local_n = sn * A.ear_half_thickness + relief
    # hinge: the middle of the front edge sits on the skull; the flare lifts the back edge off it
    front = np.array([0.0, A.ear_c[1], A.ear_c[2] + A.ear_half_width * 0.78])
    hinge = front + cast(front[None], np.array([[sign, 0.0, 0.0]]))[0] * np.array([sign, 0.0, 0.0])
    p = hinge + (local_a - A.ear_half_width * 0.78)[:, None] * fwd + local_b[:, None] * up + local_n[:, None] * out
    return p, _orient_outward(p, faces)


def _mouth_cavity() -> tuple[np.ndarray, np.ndarray]:
    """(points, faces) of the inside of the mouth: an ellipsoid whose triangles face inwards."""
    pts, faces = _sphere_grid(7, 14)
    return np.asarray(A.mouth_cavity_c) + pts * np.asarray(A.mouth_cavity_r), faces[:, [0, 2, 1]]


def _orient_outward(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Flip a closed mesh's triangles if its signed volume is negative (they faced inwards)."""
    t = points[faces]
    volume = np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum()
    return faces if volume > 0 else faces[:, [0, 2, 1]]


PARTS = ("head", "left_eye", "right_eye", "left_ear", "right_ear", "mouth")


@dataclass
class Mesh:
    """The assembled template in the design frame, with what the rig and components need to know."""

    vertices: np.ndarray          # (V, 3)
    faces: np.ndarray             # (F, 3)
    part: np.ndarray              # (V,) index into PARTS
    grid: Grid
    lower_lip: np.ndarray         # (n_slit,) vertex ids of the lower-lip duplicates
    lip_side: np.ndarray          # (V,) +1 upper face / lip, -1 lower lip and jaw side of the slit, 0 elsewhere
    eye_polar: np.ndarray         # (V,) angle from the gaze axis on the eyeballs, nan elsewhere
    extra: dict = dataclass_field(default_factory=dict)


LID_SNAP = 0.0014     # metres: grid vertices this close to a lid margin move onto it


def _snap_to_lids(dirs: np.ndarray) -> np.ndarray:
    """Turn rays that pass close to an eye's opening onto its outline, so the lid margins are
    vertex rows rather than a staircase of grid cells."""
    dirs = dirs.copy()
    for side in (np.asarray, _mirror):
        c = side(A.eye_c) + np.array([0.0, -0.0008, 0.0])
        z_front = c[2] + A.eye_r
        t = (z_front - RAY_ORIGIN[2]) / np.maximum(dirs[:, 2], 1e-9)
        q = RAY_ORIGIN + t[:, None] * dirs                       # where each ray crosses the eye's front plane
        near = (dirs[:, 2] > 0.1) & (np.abs(q[:, 0] - c[0]) < 0.03) & (np.abs(q[:, 1] - c[1]) < 0.02)
        d = _almond(q, c)
        snap = near & (np.abs(d) < LID_SNAP)
        eps = 1e-6
        grad = np.stack([_almond(q + [eps, 0, 0], c) - _almond(q - [eps, 0, 0], c),
                         _almond(q + [0, eps, 0], c) - _almond(q - [0, eps, 0], c)], axis=1)
        grad /= np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-12)
        target = q.copy()
        target[:, :2] -= (d - 0.0004)[:, None] * grad           # onto the outline, 0.4 mm out, on the lid
        new = target - RAY_ORIGIN
        dirs[snap] = new[snap] / np.linalg.norm(new[snap], axis=1, keepdims=True)
    return dirs


LIP_CREASE = 0.0012   # metres the mouth line is pushed in, so the closed mouth reads as a line


def build_mesh() -> Mesh:
    """The template mesh (design frame)."""
    grid = _build_grid()
    dirs = _snap_to_lids(grid.directions())
    origins = np.broadcast_to(RAY_ORIGIN, dirs.shape)
    t = cast(origins, dirs)
    t[grid.index(grid.mouth_row, grid.slit_cols)] -= LIP_CREASE
    for c in (grid.slit_cols[0] - 1, grid.slit_cols[-1] + 1):      # the mouth corners
        t[grid.index(grid.mouth_row, c)] -= 0.5 * LIP_CREASE
    head = RAY_ORIGIN + t[:, None] * dirs
    n_head = len(head)
    lower_ids = n_head + np.arange(len(grid.slit_cols))
    lower_lip = dict(zip(grid.slit_cols.tolist(), lower_ids.tolist()))
    head_faces = _grid_faces(grid, lower_lip)
    vertices = [head, head[grid.index(grid.mouth_row, grid.slit_cols)]]
    faces = [head_faces]
    part = [np.zeros(n_head + len(lower_ids), dtype=np.int64)]
    eye_polar = [np.full(n_head + len(lower_ids), np.nan)]
    offset = n_head + len(lower_ids)

    def add(pts, tris, part_id, polar=None):
        nonlocal offset
        vertices.append(pts)
        faces.append(tris + offset)
        part.append(np.full(len(pts), part_id))
        eye_polar.append(polar if polar is not None else np.full(len(pts), np.nan))
        offset += len(pts)

    for part_id, side in ((1, np.asarray), (2, _mirror)):
        pts, tris, polar = _eyeball(side)
        add(pts, tris, part_id, polar=polar)
    for part_id, sign in ((3, 1.0), (4, -1.0)):
        add(*_ear(sign), part_id)
    pts, tris = _mouth_cavity()
    add(pts, tris, 5)

    V = np.concatenate(vertices)
    lip_side = np.zeros(len(V))
    rows = np.arange(grid.n_rows)
    upper_rows = rows[rows <= grid.mouth_row]
    lip_side[grid.index(upper_rows[:, None], np.arange(grid.n_cols)[None]).ravel()] = 1.0
    lip_side[0] = 1.0
    lower_rows = rows[rows > grid.mouth_row]
    lip_side[grid.index(lower_rows[:, None], np.arange(grid.n_cols)[None]).ravel()] = -1.0
    lip_side[lower_ids] = -1.0
    return Mesh(vertices=V, faces=np.concatenate(faces).astype(np.int64), part=np.concatenate(part),
                grid=grid, lower_lip=lower_ids, lip_side=lip_side, eye_polar=np.concatenate(eye_polar))


# ----------------------------------------------------------------------------------------------
# 3. rig: skinning weights, joint regressor, landmarks, subsets and regions

ROOT, NECK, JAW, LEFT_EYE, RIGHT_EYE = range(5)


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
    throat = 1.0 - _smoothstep((A.chin_c[1] - A.chin_r[1] + 0.004 - v[:, 1]) / 0.02
                               + _smoothstep((A.chin_c[2] - v[:, 2]) / 0.05))
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
    P = v[candidates]                                   # (n, 3)
    n = len(candidates)
    A_eq = np.vstack([P.T, np.ones(n)])                 # (4, n)
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
    if _flipped_cells(grid)[c]:                          # triangles (a, c, d) and (a, d, b)
        if fr >= fc:
            return first, np.array([1.0 - fr, fr - fc, fc])
        return second, np.array([1.0 - fc, fr, fc - fr])
    if fr + fc <= 1.0:                                   # triangles (a, c, b) and (b, c, d)
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
    contour = _contour_points(np.linspace(-12.0, 192.0, 17))                       # 0-16, right to left
    brow = [(-0.052, 0.045), (-0.043, 0.0515), (-0.032, 0.0545), (-0.021, 0.0535), (-0.011, 0.050)]
    front_xy = brow + [(-x, y) for x, y in reversed(brow)]                         # 17-26
    front_xy += [(0.0, y) for y in (0.031, 0.018, 0.005, -0.008)]                  # 27-30 bridge to tip
    front_xy += [(-0.0135, -0.019), (-0.007, -0.0215), (0.0, -0.023), (0.007, -0.0215), (0.0135, -0.019)]  # 31-35
    # 36-41 right eye, 42-47 left eye: corners and lid margins on the almond outline, just on the lid
    a, b = A.lid_half_width, A.lid_half_height
    R = (a * a + b * b) / (2.0 * b)
    lid = lambda dx: (b - R) + np.sqrt(R * R - dx * dx) + 0.0006
    for sign in (-1.0, 1.0):
        cx, cy = sign * A.eye_c[0], A.eye_c[1] - 0.0008
        outer, inner = cx + sign * a * 0.97, cx - sign * a * 0.97
        first, last = (outer, inner) if sign < 0 else (inner, outer)   # iBUG goes left to right in the image
        xs_up = (cx - a / 3, cx + a / 3)
        front_xy += [(first, cy), (xs_up[0], cy + lid(xs_up[0] - cx)), (xs_up[1], cy + lid(xs_up[1] - cx)),
                     (last, cy), (xs_up[1], cy - lid(xs_up[1] - cx)), (xs_up[0], cy - lid(xs_up[0] - cx))]
    # 49-53 upper outer lip, 55-59 lower outer lip
    w, m = A.mouth_half_width, A.mouth_y
    upper = lambda t: m + 0.0042 + A.upper_lip_r * (0.55 + 0.45 * np.sqrt(1 - t * t)) * 0.95
    lower = lambda t: m - 0.0052 - A.lower_lip_r * (0.55 + 0.45 * np.sqrt(1 - t * t)) * 0.95
    front_xy += [(t * w, upper(t)) for t in (-0.6, -0.25, 0.0, 0.25, 0.6)]
    front_xy += [(t * w, lower(t)) for t in (0.6, 0.25, 0.0, -0.25, -0.6)]
    front = list(_front_points(front_xy))
    lip_line = lambda t: _lip_curve(np.array([t]), m, A.lip_front_z)[0]
    pts: list[tuple[np.ndarray, str | None]] = [(p, None) for p in contour]
    pts += [(front.pop(0), None) for _ in range(10 + 4 + 5 + 12)]                  # brows, nose, eyes
    pts.append((lip_line(-1.0), "upper"))                                          # 48 right corner
    pts += [(front.pop(0), None) for _ in range(5)]                                # 49-53
    pts.append((lip_line(1.0), "upper"))                                           # 54 left corner
    pts += [(front.pop(0), None) for _ in range(5)]                                # 55-59
    pts += [(lip_line(t), "upper") for t in (-1.0, -0.5, 0.0, 0.5, 1.0)]           # 60-64
    pts += [(lip_line(t), "lower") for t in (0.5, 0.0, -0.5)]                      # 65-67
    assert len(pts) == N_LANDMARKS and not front
    return pts


def landmark_embedding(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """(lmk_faces (68,), lmk_bary (68, 3)) on the template's grid triangles."""
    faces, bary = zip(*(_embed(mesh.grid, p, lip) for p, lip in landmark_points()))
    return np.array(faces, dtype=np.int64), np.array(bary, dtype=np.float32)


def _interp_deg(x_deg: np.ndarray, table: list[tuple[float, float]]) -> np.ndarray:
    xs, ys = zip(*table)
    return np.deg2rad(np.interp(x_deg, xs, ys))


HAIRLINE = [(0, 38), (40, 42), (60, 52), (72, 68), (80, 56), (95, 52), (115, 70), (140, 95), (180, 108)]  # |phi| -> theta, degrees


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
        brow_d = np.minimum.reduce([brow_d, sdf.capsule(v, side(A.brow_in), side(A.brow_mid), A.brow_r),
                                    sdf.capsule(v, side(A.brow_mid), side(A.brow_out), A.brow_r)])
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


# ----------------------------------------------------------------------------------------------
# 4. shape and expression components, pose correctives

N_SHAPE_MODES = 300
N_EXPR_MODES = 100
SHAPE_STD_FIRST = 0.003      # rms displacement per coordinate (metres) of one unit of the first shape component
SHAPE_STD_DECAY = 0.8        # std of component k is first * (k + 1) ** -decay
EXPR_STD_FIRST = 0.0006      # expressions are local: 0.6 mm rms over the head is ~7 mm at the mouth corners
EXPR_STD_DECAY = 0.6
MIRROR = np.array([-1.0, 1.0, 1.0])


def _gauss(p: np.ndarray, centre, sigma: float) -> np.ndarray:
    return np.exp(-np.sum((p - np.asarray(centre)) ** 2, axis=1) / (2.0 * sigma * sigma))


def _both(p: np.ndarray, centre, sigma: float) -> np.ndarray:
    """A Gaussian bump at ``centre`` and at its mirror image."""
    return _gauss(p, centre, sigma) + _gauss(p, np.asarray(centre) * MIRROR, sigma)


def _vec(*components) -> np.ndarray:
    return np.stack(np.broadcast_arrays(*components), axis=1)


def _rbf_field(rng: np.random.Generator, centres_from: np.ndarray, sigma: float, n: int = 6):
    """A random smooth displacement field: a sum of ``n`` Gaussian bumps with random 3D weights."""
    centres = centres_from[rng.choice(len(centres_from), size=n, replace=False)]
    weights = rng.standard_normal((n, 3))

    def field_fn(p: np.ndarray) -> np.ndarray:
        d2 = ((p[:, None, :] - centres[None]) ** 2).sum(-1)
        return np.exp(-d2 / (2 * sigma * sigma)) @ weights
    return field_fn


N_SHAPE_HARMONICS = 200      # scalar harmonics of the head surface behind the random shape modes
N_EXPR_HARMONICS = 120       # ... of the face patch behind the random expression modes
HARMONIC_WINDOW = 12         # a random mode mixes this many neighbouring (in frequency) vector harmonics
SHAPE_SYMMETRIC = 0.85       # share of random shape modes made left-right symmetric
EXPR_SYMMETRIC = 0.5


def mirror_permutation(v: np.ndarray) -> np.ndarray:
    """Index of each vertex's mirror image (x -> -x); the template is exactly symmetric."""
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(v).query(v * MIRROR)
    if dist.max() > 1e-9:
        raise RuntimeError(f"the template is not left-right symmetric (off by {dist.max():.2g} m)")
    return idx


def _weld_map(mesh: Mesh) -> np.ndarray:
    """(V,) vertex -> itself, except each lower-lip duplicate -> its upper-lip twin."""
    twin = np.arange(len(mesh.vertices))
    twin[mesh.lower_lip] = mesh.grid.index(mesh.grid.mouth_row, mesh.grid.slit_cols)
    return twin


def _cotan_laplacian(v: np.ndarray, faces: np.ndarray):
    """(stiffness L, lumped mass M) of a triangle mesh, both sparse (n, n); cotangents clamped at 0."""
    import scipy.sparse as sp

    n = len(v)
    rows, cols, vals = [], [], []
    area = np.zeros(n)
    for i in range(3):
        a, b, c = faces[:, i], faces[:, (i + 1) % 3], faces[:, (i + 2) % 3]
        e1, e2 = v[b] - v[a], v[c] - v[a]
        cross = np.linalg.norm(np.cross(e1, e2), axis=1)
        cot = np.clip((e1 * e2).sum(1) / np.maximum(cross, 1e-15), 0.0, 1e3)   # angle at a, opposite edge b-c
        rows += [b, c]
        cols += [c, b]
        vals += [0.5 * cot, 0.5 * cot]
        np.add.at(area, a, cross / 6.0)
    W = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
    L = sp.diags(np.asarray(W.sum(1)).ravel()) - W
    return L.tocsc(), sp.diags(np.maximum(area, 1e-12)).tocsc()


def _vector_harmonics(v: np.ndarray, faces: np.ndarray, verts: np.ndarray, n: int) -> np.ndarray:
    """(len(verts), 3, 3n) displacement fields: the n smoothest non-constant harmonics of the
    sub-mesh on ``verts`` times each axis, ordered by frequency, each of unit norm."""
    from scipy.sparse.linalg import eigsh

    local = np.full(len(v), -1)
    local[verts] = np.arange(len(verts))
    L, M = _cotan_laplacian(v[verts], local[faces])
    vals, vecs = eigsh(L, k=n + 1, M=M, sigma=-1e-6, which="LM", v0=np.ones(len(verts)))
    order = np.argsort(vals)[1:]                                   # drop the constant
    vecs = vecs[:, order] / np.linalg.norm(vecs[:, order], axis=0)
    vecs *= np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])  # a fixed sign
    out = np.zeros((len(verts), 3, 3 * n))
    for axis in range(3):
        out[:, axis, axis::3] = vecs
    return out


def _extend(basis: np.ndarray, mesh: Mesh, known: np.ndarray, twin: np.ndarray) -> np.ndarray:
    """Fields on ``known`` vertices -> all vertices: twins copy, others average their 4 nearest known vertices."""
    from scipy.spatial import cKDTree

    V = len(mesh.vertices)
    out = np.zeros((V,) + basis.shape[1:])
    out[known] = basis
    has = np.zeros(V, dtype=bool)
    has[known] = True
    copy = ~has & has[twin]
    out[copy] = out[twin[copy]]
    has |= copy
    rest = np.flatnonzero(~has)
    if len(rest):
        dist, idx = cKDTree(mesh.vertices[known]).query(mesh.vertices[rest], k=4)
        w = 1.0 / np.maximum(dist, 1e-6)
        w /= w.sum(1, keepdims=True)
        out[rest] = np.einsum("rk,rk...->r...", w, basis[idx])
    return out


def _shape_basis(mesh: Mesh) -> np.ndarray:
    """(V, 3, 3 * N_SHAPE_HARMONICS) harmonics of the whole head surface (lips welded), cached."""
    if "shape_basis" not in mesh.extra:
        twin = _weld_map(mesh)
        main = np.flatnonzero((mesh.part == 0) & (twin == np.arange(len(twin))))
        faces = twin[mesh.faces[np.all(mesh.part[mesh.faces] == 0, axis=1)]]
        basis = _vector_harmonics(mesh.vertices, faces, main, N_SHAPE_HARMONICS)
        mesh.extra["shape_basis"] = _extend(basis, mesh, main, twin)
    return mesh.extra["shape_basis"]


def _expression_basis(mesh: Mesh) -> np.ndarray:
    """(V, 3, 3 * N_EXPR_HARMONICS) harmonics of the face patch (lips free), cached."""
    if "expression_basis" not in mesh.extra:
        v = mesh.vertices
        patch = np.flatnonzero((mesh.part == 0) & (_face_mask(v) > 0.02))
        in_patch = np.zeros(len(v), dtype=bool)
        in_patch[patch] = True
        faces = mesh.faces[np.all(in_patch[mesh.faces], axis=1)]
        basis = _vector_harmonics(v, faces, patch, N_EXPR_HARMONICS)
        mesh.extra["expression_basis"] = _extend(basis, mesh, patch, np.arange(len(v)))
    return mesh.extra["expression_basis"]


def _windowed_mixtures(basis: np.ndarray, count: int, rng: np.random.Generator):
    """``count`` random fields (V, 3), each a Gaussian mix of HARMONIC_WINDOW neighbouring basis fields,
    the windows sliding from the coarsest to the finest."""
    K = basis.shape[2]
    starts = np.linspace(0, K - HARMONIC_WINDOW, count).round().astype(int)
    for start in starts:
        w = rng.standard_normal(HARMONIC_WINDOW)
        yield basis[:, :, start:start + HARMONIC_WINDOW] @ w


def _eye_translation(field: np.ndarray, mesh: Mesh) -> np.ndarray:
    """(V, 3): each eyeball's mean displacement on its vertices (the rest zero), so eyes stay rigid."""
    out = np.zeros_like(field)
    for part_name in ("left_eye", "right_eye"):
        sel = mesh.part == PARTS.index(part_name)
        out[sel] = field[sel].mean(0)
    return out


def _finish(fields: list[np.ndarray], mesh: Mesh, first_std: float, decay: float) -> np.ndarray:
    """Orthonormalise the fields in order (as V*3 vectors) and scale them: (V, 3, K)."""
    V = len(mesh.vertices)
    X = np.stack([f.reshape(-1) for f in fields], axis=1)            # (3V, K)
    Q, R = np.linalg.qr(X)
    Q *= np.sign(np.diag(R))[None, :]                                # keep each mode's own direction
    std = first_std * (np.arange(len(fields)) + 1.0) ** -decay
    return (Q * (np.sqrt(3 * V) * std)[None, :]).reshape(V, 3, -1)


def _rigid_eyes(field: np.ndarray, mesh: Mesh, value_at) -> np.ndarray:
    """Eyeballs move rigidly: each takes the displacement of its centre."""
    for part_name, centre in (("left_eye", np.asarray(A.eye_c)), ("right_eye", _mirror(A.eye_c))):
        sel = mesh.part == PARTS.index(part_name)
        field[sel] = value_at(centre[None])[0]
    return field


def shape_components(mesh: Mesh, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 300): anatomical modes first, then random smooth fields from coarse to fine."""
    centre = np.array([0.0, 0.01, -0.005])
    lower_face = lambda p: _smoothstep((0.0 - p[:, 1]) / 0.05) * _smoothstep((p[:, 2] + 0.02) / 0.04)
    zeros = lambda p: np.zeros(len(p))
    modes = [
        lambda p: p - centre,                                                           # size (depth = size - width - height)
        lambda p: _vec(p[:, 0], zeros(p), zeros(p)),                                    # width
        lambda p: _vec(zeros(p), p[:, 1] - centre[1], zeros(p)),                        # height
        lambda p: _vec(zeros(p), (p[:, 1] - 0.02) * _smoothstep((0.02 - p[:, 1]) / 0.04), zeros(p)),  # face length
        lambda p: _vec(p[:, 0] * lower_face(p), zeros(p), zeros(p)),                   # jaw width
        lambda p: (p - np.asarray(A.nose_root)) * _gauss(p, A.nose_tip, 0.018)[:, None],  # nose size
        lambda p: _vec(p[:, 0] * _gauss(p, A.nose_tip, 0.016), zeros(p), zeros(p)),   # nose width
        lambda p: _vec(zeros(p), -0.3 * _gauss(p, A.chin_c, 0.02), _gauss(p, A.chin_c, 0.02)),  # chin
        lambda p: _vec(np.sign(p[:, 0]) * _both(p, A.cheek_c, 0.02), zeros(p), 0.5 * _both(p, A.cheek_c, 0.02)),  # cheekbones
        lambda p: _vec(np.sign(p[:, 0]) * _both(p, A.eye_c, 0.016), zeros(p), zeros(p)),  # eye spacing
        lambda p: _vec(zeros(p), zeros(p), _both(p, A.brow_mid, 0.018)),               # brow ridge
        lambda p: _vec(zeros(p), zeros(p), (p[:, 1] - 0.03) * _smoothstep((p[:, 1] - 0.03) / 0.05)
                       * _smoothstep(p[:, 2] / 0.05)),                                  # forehead slope
        lambda p: _vec(zeros(p), 0.2 * np.sign(p[:, 1] - A.mouth_y) * _gauss(p, (0, A.mouth_y, A.lip_front_z), 0.014),
                       _gauss(p, (0, A.mouth_y, A.lip_front_z), 0.014)),               # lip fullness
        lambda p: _vec(zeros(p), zeros(p), -_smoothstep((-0.03 - p[:, 2]) / 0.06)),     # skull length
        lambda p: _vec(zeros(p), _smoothstep((p[:, 1] - 0.05) / 0.06), zeros(p)),       # skull height
        lambda p: _vec(np.sign(p[:, 0]) * _both(p, A.ear_c, 0.02), zeros(p), zeros(p)),  # ears out
    ]
    fields = [_rigid_eyes(fn(mesh.vertices), mesh, fn) for fn in modes]
    # then random mixtures of the surface's vibration modes (manifold harmonics), coarse to fine;
    # the lower lip shares its twin's values so shape never opens the mouth
    basis, mirror = _shape_basis(mesh), mirror_permutation(mesh.vertices)
    # damped towards the cut at the bottom of the neck, where free-boundary harmonics are largest
    taper = (0.25 + 0.75 * _smoothstep((mesh.vertices[:, 1] + 0.17) / 0.07))[:, None]
    for field in _windowed_mixtures(basis, N_SHAPE_MODES - len(fields), rng):
        if rng.random() < SHAPE_SYMMETRIC:
            field = 0.5 * (field + field[mirror] * MIRROR)
        field = field * taper
        eyes = (mesh.part == PARTS.index("left_eye")) | (mesh.part == PARTS.index("right_eye"))
        field[eyes] = _eye_translation(field, mesh)[eyes]
        fields.append(field)
    return _finish(fields, mesh, SHAPE_STD_FIRST, SHAPE_STD_DECAY)


def _face_mask(p: np.ndarray) -> np.ndarray:
    """1 on the front of the face, fading to 0 towards the ears, scalp and neck."""
    return (_smoothstep((p[:, 2] - 0.01) / 0.04) * _smoothstep((p[:, 1] + 0.115) / 0.02)
            * (1.0 - _smoothstep((p[:, 1] - 0.06) / 0.025)))


def expression_components(mesh: Mesh, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 100): face movements first (smile, lips part, brows...), then random local fields."""
    v = mesh.vertices
    corner = np.array([A.mouth_half_width, A.mouth_y, A.lip_corner_z])
    mouth = np.array([0.0, A.mouth_y, A.lip_front_z])
    lids = np.asarray(A.eye_c) + np.array([0.0, 0.0, A.eye_r])
    lip_side = mesh.lip_side
    zeros = lambda p: np.zeros(len(p))
    sx = lambda p: np.sign(p[:, 0])
    modes = [
        lambda p: _vec(0.5 * sx(p), 1.0, -0.4) * _both(p, corner, 0.012)[:, None]
                  + _vec(zeros(p), 0.4, 0.2) * _both(p, A.cheek_c, 0.018)[:, None],       # smile
        lambda p: _vec(zeros(p), lip_side, zeros(p)) * _gauss(p, mouth, 0.016)[:, None],    # lips part
        lambda p: _vec(zeros(p), 1.0, 0.1) * _both(p, A.brow_mid, 0.018)[:, None],         # brows up
        lambda p: _vec(-0.6 * sx(p), -1.0, 0.2) * _both(p, A.brow_in, 0.011)[:, None],     # frown
        lambda p: _vec(-0.8 * p[:, 0] / A.mouth_half_width, zeros(p), 1.0) * _gauss(p, mouth, 0.015)[:, None],  # pucker
        lambda p: _vec(sx(p), -0.5, -0.3) * _both(p, corner, 0.012)[:, None],              # mouth stretch
        lambda p: _vec(zeros(p), -1.0, 0.0) * _both(p, corner, 0.011)[:, None],            # corners down
        lambda p: _vec(0.8 * sx(p), -0.2, 0.4) * _both(p, A.cheek_c + np.array([0, -0.03, 0.01]), 0.016)[:, None],  # cheeks puff
        lambda p: _vec(zeros(p), 1.0, 0.3) * _both(p, A.ala + np.array([0, 0.01, 0]), 0.009)[:, None],  # nose wrinkle
        lambda p: _vec(zeros(p), np.clip(lip_side, 0, 1), 0.3) * _gauss(p, mouth + [0, 0.008, 0], 0.012)[:, None],  # upper lip up
        lambda p: _vec(zeros(p), -np.clip(-lip_side, 0, 1), 0.2) * _gauss(p, mouth - [0, 0.01, 0], 0.012)[:, None],  # lower lip down
        lambda p: _vec(zeros(p), -np.sign(p[:, 1] - lids[1]), zeros(p)) * _both(p, lids, 0.009)[:, None],  # squint
        lambda p: np.array([0.5, 1.0, -0.4]) * _gauss(p, corner, 0.012)[:, None],        # half smile
        lambda p: _vec(zeros(p), zeros(p), 1.0) * _gauss(p, A.chin_c, 0.025)[:, None],    # chin forward
    ]
    mask = _face_mask(v) * ((mesh.part == 0) | (mesh.part == PARTS.index("mouth")))
    fields = [fn(v) * mask[:, None] for fn in modes]
    # then random mixtures of the face's own vibration modes (the lips free to part), tapered
    basis, mirror = _expression_basis(mesh), mirror_permutation(v)
    for field in _windowed_mixtures(basis, N_EXPR_MODES - len(fields), rng):
        if rng.random() < EXPR_SYMMETRIC:
            field = 0.5 * (field + field[mirror] * MIRROR)
        fields.append(field * mask[:, None])
    return _finish(fields, mesh, EXPR_STD_FIRST, EXPR_STD_DECAY)


def pose_correctives(mesh: Mesh, rng: np.random.Generator) -> np.ndarray:
    """(V, 3, 36) correctives per entry of (R_j - I), joints neck, jaw, left eye, right eye.

    Small and local: the neck's on the neck, the jaw's on the lower face (opening the jaw hollows
    the cheeks and gathers the skin under the chin), the eyes' on the lids. Eyeballs stay rigid.
    """
    v = mesh.vertices
    main = (mesh.part == 0).astype(float)
    surface = v[mesh.part == 0]
    masks = {
        NECK: main * _smoothstep((-0.02 - v[:, 1]) / 0.04) * (1 - _smoothstep((-0.14 - v[:, 1]) / 0.03)),
        JAW: main * _face_mask(v) * _smoothstep((A.mouth_y + 0.01 - v[:, 1]) / 0.03),
        LEFT_EYE: main * _gauss(v, A.eye_c, 0.012),
        RIGHT_EYE: main * _gauss(v, _mirror(A.eye_c), 0.012),
    }
    P = np.zeros((len(v), 3, 36))
    for joint in (NECK, JAW, LEFT_EYE, RIGHT_EYE):
        for entry in range(9):
            fn = _rbf_field(rng, surface, 0.03, n=4)
            P[:, :, 9 * (joint - 1) + entry] = 0.001 * fn(v) * masks[joint][:, None]
    # the jaw opening (rotation about x): sin(angle) is the (2, 1) entry of R - I
    inward = -np.stack([v[:, 0], np.zeros(len(v)), np.zeros(len(v))], axis=1) / 0.05
    hollow = _both(v, A.cheek_c + np.array([0.0, -0.035, 0.0]), 0.015) * main
    under_chin = _gauss(v, np.array([0.0, -0.1, 0.03]), 0.02) * main
    P[:, :, 9 * (JAW - 1) + 7] += 0.012 * inward * hollow[:, None] + 0.01 * np.array([0.0, -0.3, 1.0]) * under_chin[:, None]
    return P


# ----------------------------------------------------------------------------------------------


_MESH_CACHE: list[Mesh] = []


def _template_mesh() -> Mesh:
    """The seed-independent template (built once per process: a few seconds)."""
    if not _MESH_CACHE:
        _MESH_CACHE.append(build_mesh())
    return _MESH_CACHE[0]


def build_head_model(seed: int = 0) -> HeadModel:
    """Build the procedural head model; the same seed gives the same arrays (and file bytes)."""
    mesh = _template_mesh()
    rng = np.random.default_rng([seed, 0x68656164])  # "head"
    lmk_faces, lmk_bary = landmark_embedding(mesh)
    subsets, regions = vertex_sets(mesh, lmk_faces, lmk_bary)
    shapedirs = np.concatenate([shape_components(mesh, rng), expression_components(mesh, rng)], axis=2)
    model = HeadModel(
        v_template=mesh.vertices + TEMPLATE_SHIFT,
        shapedirs=shapedirs,
        posedirs=pose_correctives(mesh, rng),
        J_regressor=joint_regressor(mesh),
        weights=skinning_weights(mesh),
        kintree_table=np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        faces=mesh.faces,
        lmk_faces=lmk_faces,
        lmk_bary=lmk_bary,
        subsets=subsets,
        regions=regions,
        name=f"vggheads procedural head v1 (seed {seed})",
    )
    return model.validate("procedural head model")
