"""The procedural head model's surface: its anatomy, the template mesh and its separate parts.

Steps 1 and 2 of :mod:`vggheads.headmodel.builder` (all in the "design" frame: origin between the
ear canals; the builder shifts the template by ``TEMPLATE_SHIFT``):

1. The surface is a signed-distance field (skull, face, jaw, chin, nose, brows, cheekbones,
   lips, neck; eye sockets with almond-shaped lid openings carved in). A latitude-longitude grid
   of rays from a point inside the head (the neck rows are parallel rays sliding down the neck)
   finds the surface, so the mesh is a clean quad grid, denser on the face. The mouth is a slit
   in the grid (the lower lip's vertices are duplicates of the upper lip's, skinned to the jaw).
2. Separate closed parts: two eyeballs (skinned to the eye joints), two ears (flattened shells
   with a rim and a bowl), and an inward-facing mouth cavity seen when the jaw opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np

from . import sdf

RAY_ORIGIN = np.array([0.0, -0.025, -0.015])  # every ray of the main grid starts here (inside, below the skull centre)
NECK_AXIS_Z = -0.026  # neck cylinder axis (x = 0), metres


@dataclass(frozen=True)
class Anatomy:
    """Sizes and positions of the head's parts (design frame, metres; x to the subject's left).

    Left-side parts are given; the right side is their mirror image.
    """

    cranium_c: tuple = (0.0, 0.028, -0.016)
    cranium_r: tuple = (0.074, 0.097, 0.098)
    face_c: tuple = (0.0, -0.015, 0.018)
    face_r: tuple = (0.066, 0.070, 0.062)
    muzzle_c: tuple = (0.0, -0.047, 0.058)  # maxilla and teeth under the lips
    muzzle_r: tuple = (0.034, 0.032, 0.033)
    cheek_c: tuple = (0.047, 0.004, 0.050)
    cheek_r: tuple = (0.020, 0.015, 0.016)
    ramus_top: tuple = (0.060, -0.010, -0.005)
    jaw_angle: tuple = (0.057, -0.062, 0.000)  # gonion
    jaw_front: tuple = (0.020, -0.093, 0.058)
    ramus_r: float = 0.012
    jaw_r: float = 0.013
    chin_c: tuple = (0.0, -0.085, 0.069)
    chin_r: tuple = (0.024, 0.017, 0.019)
    neck_r: tuple = (0.054, 0.050)  # half width (x), half depth (z)
    neck_top_y: float = -0.02
    nose_root: tuple = (0.0, 0.034, 0.076)  # inside the bridge, at the nasion
    nose_tip: tuple = (0.0, -0.008, 0.101)  # centre of the tip's ball
    nose_root_r: float = 0.006
    nose_tip_r: float = 0.011
    ala: tuple = (0.0145, -0.016, 0.086)  # nostril wing centre
    ala_r: float = 0.0085
    brow_in: tuple = (0.010, 0.046, 0.072)  # brow ridge: inner end, arch, outer end
    brow_mid: tuple = (0.030, 0.050, 0.068)
    brow_out: tuple = (0.050, 0.047, 0.057)
    brow_r: float = 0.0075
    eye_c: tuple = (0.0315, 0.027, 0.060)  # eyeball centre
    eye_r: float = 0.0118
    orbit_r: tuple = (0.020, 0.014, 0.012)  # the hollow around the eye
    lids_r: tuple = (0.021, 0.016, 0.0175)  # the mound of the lids over the eyeball
    lid_half_width: float = 0.0145  # palpebral fissure half length
    lid_half_height: float = 0.0047
    mouth_y: float = -0.049  # stomion height
    mouth_half_width: float = 0.0235
    upper_lip_r: float = 0.0045
    lower_lip_r: float = 0.0055
    lip_front_z: float = 0.092  # z of the lips' centre line at the midline
    lip_corner_z: float = 0.081
    ear_c: tuple = (0.070, 0.004, -0.016)  # centre (its x is found on the skull's surface)
    ear_half_height: float = 0.031
    ear_half_width: float = 0.0175
    ear_half_thickness: float = 0.004
    ear_tilt_deg: float = 15.0  # top of the ear leans back
    ear_flare_deg: float = 18.0  # back edge stands off the skull
    mouth_cavity_c: tuple = (0.0, -0.051, 0.060)
    mouth_cavity_r: tuple = (0.017, 0.012, 0.020)
    jaw_joint: tuple = (0.0, -0.008, 0.0)  # between the temporomandibular joints
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
    up = np.hypot(q[:, 0], q[:, 1] - (b - R)) - R  # upper lid arc (disc centred below)
    down = np.hypot(q[:, 0], q[:, 1] + (b - R)) - R  # lower lid arc (disc centred above)
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
    mandible = _pair(
        lambda side: sdf.smooth_union(
            sdf.capsule(p, side(A.jaw_angle), side(A.jaw_front), A.jaw_r),
            sdf.capsule(p, side(A.ramus_top), side(A.jaw_angle), A.ramus_r),
            0.01,
        )
    )
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
    brows = _pair(
        lambda side: np.minimum(
            sdf.capsule(p, side(A.brow_in), side(A.brow_mid), A.brow_r),
            sdf.capsule(p, side(A.brow_mid), side(A.brow_out), A.brow_r),
        )
    )
    d = sdf.smooth_union(d, brows, 0.02)
    d = sdf.smooth_union(d, np.minimum(_lip_sdf(p, True), _lip_sdf(p, False)), 0.007)
    # eyes: a hollow, the lids' mound over the eyeball, and the almond-shaped opening between the lids
    hollow = _pair(lambda side: sdf.ellipsoid(p, side(A.eye_c) + np.array([0.0, -0.002, 0.008]), A.orbit_r))
    d = sdf.smooth_subtract(d, hollow, 0.012)
    lids = _pair(lambda side: sdf.ellipsoid(p, side(A.eye_c) + np.array([0.0, 0.0, -0.004]), A.lids_r))
    d = sdf.smooth_union(d, lids, 0.006)
    opening = _pair(
        lambda side: np.maximum(_almond(p, side(A.eye_c) + np.array([0.0, -0.0008, 0.0])), side(A.eye_c)[2] - p[:, 2])
    )
    return sdf.smooth_subtract(d, opening, 0.0015)


# ----------------------------------------------------------------------------------------------
# 1. the main surface: a ray grid


def _density_map(n: int, lo: float, hi: float, density, include_hi: bool) -> np.ndarray:
    """n values in [lo, hi] spaced inversely to ``density`` (a function of the value)."""
    x = np.linspace(lo, hi, 4001)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density(x[1:]) + density(x[:-1])) * np.diff(x))])
    cdf /= cdf[-1]
    u = np.linspace(0.0, 1.0, n + (0 if include_hi else 1))[:n]
    return np.interp(u, cdf, x)


N_ROWS = 62
N_COLS = 68
THETA_TOP = np.deg2rad(4.0)  # first ring around the crown vertex
THETA_BOTTOM = np.deg2rad(158.0)  # last ring: the bottom of the neck (cut on a slant, like FLAME's)


def _row_density(theta: np.ndarray) -> np.ndarray:
    deg = np.rad2deg(theta)
    return 0.5 + 1.7 * np.exp(-(((deg - 92.0) / 46.0) ** 4))


def _col_density(phi: np.ndarray) -> np.ndarray:
    deg = np.rad2deg(np.abs(phi))
    return 0.45 + 2.0 * np.exp(-((deg / 50.0) ** 4))


@dataclass
class Grid:
    """The main surface's ray grid: row r, column c -> vertex ``1 + r * n_cols + c`` (vertex 0 is the crown)."""

    theta: np.ndarray  # (n_rows,) polar angle of each row's rays from +y, seen from RAY_ORIGIN
    phi: np.ndarray  # (n_cols,) azimuth of each column (0 = +z, pi/2 = +x)
    mouth_row: int
    slit_cols: np.ndarray  # columns strictly between the mouth corners

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


EYE_ROWS = np.array(
    [0.16, 0.34, 0.52, 0.62, 0.80, 1.05, 1.35, 1.70, 2.10, 2.50, 2.85]
)  # polar angles, dense at the iris
EYE_COLS = 18
IRIS_ANGLE = 0.56  # radians from the gaze axis: iris edge (about 6 mm on a 12 mm eyeball)
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
    up = np.array([0.0, np.cos(tilt), -np.sin(tilt)])  # leans back
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
    width = A.ear_half_width * (0.78 + 0.22 * sy) * (1.0 - 0.12 * sy**2)  # narrower lobe
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

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    part: np.ndarray  # (V,) index into PARTS
    grid: Grid
    lower_lip: np.ndarray  # (n_slit,) vertex ids of the lower-lip duplicates
    lip_side: np.ndarray  # (V,) +1 upper face / lip, -1 lower lip and jaw side of the slit, 0 elsewhere
    eye_polar: np.ndarray  # (V,) angle from the gaze axis on the eyeballs, nan elsewhere
    extra: dict = dataclass_field(default_factory=dict)


LID_SNAP = 0.0014  # metres: grid vertices this close to a lid margin move onto it


def _snap_to_lids(dirs: np.ndarray) -> np.ndarray:
    """Turn rays that pass close to an eye's opening onto its outline, so the lid margins are
    vertex rows rather than a staircase of grid cells."""
    dirs = dirs.copy()
    for side in (np.asarray, _mirror):
        c = side(A.eye_c) + np.array([0.0, -0.0008, 0.0])
        z_front = c[2] + A.eye_r
        t = (z_front - RAY_ORIGIN[2]) / np.maximum(dirs[:, 2], 1e-9)
        q = RAY_ORIGIN + t[:, None] * dirs  # where each ray crosses the eye's front plane
        near = (dirs[:, 2] > 0.1) & (np.abs(q[:, 0] - c[0]) < 0.03) & (np.abs(q[:, 1] - c[1]) < 0.02)
        d = _almond(q, c)
        snap = near & (np.abs(d) < LID_SNAP)
        eps = 1e-6
        grad = np.stack(
            [
                _almond(q + [eps, 0, 0], c) - _almond(q - [eps, 0, 0], c),
                _almond(q + [0, eps, 0], c) - _almond(q - [0, eps, 0], c),
            ],
            axis=1,
        )
        grad /= np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-12)
        target = q.copy()
        target[:, :2] -= (d - 0.0004)[:, None] * grad  # onto the outline, 0.4 mm out, on the lid
        new = target - RAY_ORIGIN
        dirs[snap] = new[snap] / np.linalg.norm(new[snap], axis=1, keepdims=True)
    return dirs


LIP_CREASE = 0.0012  # metres the mouth line is pushed in, so the closed mouth reads as a line


def build_mesh() -> Mesh:
    """The template mesh (design frame)."""
    grid = _build_grid()
    dirs = _snap_to_lids(grid.directions())
    origins = np.broadcast_to(RAY_ORIGIN, dirs.shape)
    t = cast(origins, dirs)
    t[grid.index(grid.mouth_row, grid.slit_cols)] -= LIP_CREASE
    for c in (grid.slit_cols[0] - 1, grid.slit_cols[-1] + 1):  # the mouth corners
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
    return Mesh(
        vertices=V,
        faces=np.concatenate(faces).astype(np.int64),
        part=np.concatenate(part),
        grid=grid,
        lower_lip=lower_ids,
        lip_side=lip_side,
        eye_polar=np.concatenate(eye_polar),
    )
