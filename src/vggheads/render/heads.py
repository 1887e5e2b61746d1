"""Head appearance for the procedural renderer: per-vertex skin, lips, eyes, brows and hair
colours, and an optional hair shell (the scalp pushed out along its normals) for volume.

Everything is computed once per head model (:class:`HeadAssets`, template-space masks) and then
per head from a generator (:func:`sample_look`, :func:`vertex_colors`, :func:`hair_shell`). Masks
come from the model's named regions when it has them (our model) and from the 68 template
landmarks otherwise (a real FLAME file without masks), so both kinds of model render.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from .raster import vertex_normals

# sRGB skin tones from light to dark (a Fitzpatrick-like ramp); a head picks a point between two
SKIN_TONES = (
    np.array(
        [
            [250, 222, 200],
            [240, 200, 170],
            [226, 178, 144],
            [205, 150, 112],
            [176, 120, 86],
            [140, 92, 62],
            [104, 68, 46],
            [76, 50, 36],
        ],
        dtype=np.float64,
    )
    / 255.0
)
HAIR_COLORS = {
    "black": (0.05, 0.04, 0.035),
    "dark_brown": (0.16, 0.10, 0.06),
    "brown": (0.33, 0.21, 0.12),
    "light_brown": (0.52, 0.37, 0.22),
    "blond": (0.80, 0.66, 0.42),
    "red": (0.55, 0.22, 0.10),
    "grey": (0.58, 0.57, 0.55),
    "white": (0.88, 0.87, 0.84),
}
HAIR_P = np.array([0.3, 0.2, 0.17, 0.1, 0.08, 0.04, 0.06, 0.03])
IRIS_COLORS = np.array(
    [[0.25, 0.14, 0.07], [0.12, 0.07, 0.04], [0.30, 0.45, 0.62], [0.35, 0.45, 0.28], [0.45, 0.35, 0.2]]
)


def _seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points p (N, 3) to the segment a-b."""
    d = b - a
    t = np.clip(((p - a) @ d) / max(d @ d, 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * d), axis=1)


def _polyline_dist(p: np.ndarray, pts: np.ndarray, closed: bool = False) -> np.ndarray:
    segs = list(zip(pts[:-1], pts[1:])) + ([(pts[-1], pts[0])] if closed else [])
    return np.min([_seg_dist(p, a, b) for a, b in segs], axis=0)


def _inside_polygon(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    from matplotlib.path import Path

    return Path(poly).contains_points(xy)


@dataclass
class HeadAssets:
    """Per-model constants: face split, colour masks, scalp shell topology, landmark normals."""

    faces: np.ndarray  # (F, 3) all faces
    head_faces: np.ndarray  # (Fh,) indices of faces that belong to the head (not the neck)
    neck_faces: np.ndarray  # (Fn,) indices of neck faces (drawn as the body)
    neck_bottom: np.ndarray  # vertex ids around the bottom of the neck (where the body's neck attaches)
    skin_weight: dict  # mask name -> (V,) float in [0, 1]: lips, brows, sclera, iris, pupil, scalp, ears
    scalp_faces: np.ndarray  # (Fs, 3) faces of the scalp (vertex ids of the full mesh)
    scalp_taper: np.ndarray  # (V,) in [0, 1]: 0 at the hairline, 1 inside the scalp
    ear_left: np.ndarray  # vertex ids of the subject's left ear (may be empty)
    ear_right: np.ndarray
    template: np.ndarray  # (V, 3) template vertices: the PNCC values


def _region(model, *names) -> np.ndarray | None:
    for n in names:
        idx = model.regions.get(n)
        if idx is not None and len(idx):
            return np.asarray(idx, dtype=np.int64)
    return None


def build_assets(model) -> HeadAssets:
    v = np.asarray(model.v_template, dtype=np.float64)
    V = len(v)
    faces = np.asarray(model.faces, dtype=np.int64)
    lm = model.landmarks_template().astype(np.float64)
    chin = lm[8]
    brow_y = lm[17:27, 1].mean()

    # neck: the model's region, else everything well below the chin
    neck_idx = _region(model, "neck")
    neck_mask = np.zeros(V, bool)
    if neck_idx is not None:
        neck_mask[neck_idx] = True
    else:
        neck_mask = v[:, 1] < chin[1] - 0.02
    is_neck_face = neck_mask[faces].all(axis=1)
    head_faces = np.flatnonzero(~is_neck_face)
    neck_faces = np.flatnonzero(is_neck_face)
    ys = v[neck_mask, 1] if neck_mask.any() else v[:, 1]
    low = v[:, 1] <= np.quantile(ys, 0.03) + 1e-9
    neck_bottom = np.flatnonzero(low & (neck_mask if neck_mask.any() else True))

    w: dict[str, np.ndarray] = {}
    # lips: the region, else inside the outer lip contour (front surface)
    lips = _region(model, "lips")
    m = np.zeros(V)
    if lips is not None:
        m[lips] = 1.0
    else:
        front = v[:, 2] > lm[48:60, 2].min() - 0.012
        m[(_inside_polygon(v[:, :2], lm[48:60, :2]) & front)] = 1.0
    w["lips"] = m
    # eyebrows: a band along the brow landmarks on the front of the face
    d = np.minimum(_polyline_dist(v, lm[17:22]), _polyline_dist(v, lm[22:27]))
    front = v[:, 2] > lm[17:27, 2].min() - 0.015
    w["brows"] = np.clip((0.0075 - d) / 0.003, 0, 1) * front
    # eyes: inside the lid contour -> sclera; a disc around its centre -> iris and pupil
    for key in ("sclera", "iris", "pupil"):
        w[key] = np.zeros(V)
    for sl in (slice(36, 42), slice(42, 48)):
        eye = lm[sl]
        centre = eye.mean(0)
        width = np.linalg.norm(eye[3] - eye[0]) if sl.start == 36 else np.linalg.norm(eye[3] - eye[0])
        inside = _inside_polygon(v[:, :2], eye[:, :2]) & (v[:, 2] > centre[2] - 0.012)
        r = np.linalg.norm(v[:, :2] - centre[:2], axis=1)
        w["sclera"][inside] = 1.0
        w["iris"][inside & (r < 0.3 * width)] = 1.0
        w["pupil"][inside & (r < 0.13 * width)] = 1.0
    for key in ("iris", "pupil"):  # the model's own eye regions win over the landmark discs
        idx = _region(model, key)
        if idx is not None:
            w[key] = np.zeros(V)
            w[key][idx] = 1.0
    brows = _region(model, "brows")
    if brows is not None:
        w["brows"][brows] = np.maximum(w["brows"][brows], 1.0)
    w["mouth"] = np.zeros(V)
    mouth = _region(model, "mouth_interior")
    if mouth is not None:
        w["mouth"][mouth] = 1.0
    eyes = _region(model, "eyes")
    if eyes is not None:  # eyeballs deeper than the lid contour still get the white
        eye_mask = np.zeros(V, bool)
        eye_mask[eyes] = True
        w["sclera"] = np.maximum(w["sclera"], eye_mask * 1.0)
    # ears
    ears = _region(model, "ears")
    if ears is not None:
        ear_left, ear_right = ears[v[ears, 0] > 0], ears[v[ears, 0] < 0]
    else:
        ear_left = ear_right = np.zeros(0, np.int64)
    ear_w = np.zeros(V)
    ear_w[np.concatenate([ear_left, ear_right])] = 1.0
    w["ears"] = ear_w
    # scalp: the region, else above the brows and round the back of the skull
    scalp = _region(model, "scalp")
    scalp_mask = np.zeros(V, bool)
    if scalp is not None:
        scalp_mask[scalp] = True
    else:
        ear_y = lm[[0, 16], 1].mean()
        scalp_mask = (v[:, 1] > brow_y + 0.025) | ((v[:, 2] < lm[[0, 16], 2].mean() - 0.02) & (v[:, 1] > ear_y - 0.03))
        scalp_mask &= ~neck_mask
        if len(ear_left):
            scalp_mask[ear_left] = scalp_mask[ear_right] = False
    w["scalp"] = scalp_mask.astype(np.float64)
    scalp_faces = faces[scalp_mask[faces].all(axis=1)]
    # taper: distance to the nearest vertex outside the scalp, normalised
    taper = np.zeros(V)
    if scalp_mask.any() and (~scalp_mask).any():
        from scipy.spatial import cKDTree

        dist, _ = cKDTree(v[~scalp_mask]).query(v[scalp_mask])
        taper[scalp_mask] = np.clip(dist / 0.025, 0.0, 1.0)
    return HeadAssets(
        faces=faces,
        head_faces=head_faces,
        neck_faces=neck_faces,
        neck_bottom=neck_bottom,
        skin_weight=w,
        scalp_faces=scalp_faces,
        scalp_taper=taper,
        ear_left=ear_left,
        ear_right=ear_right,
        template=v.astype(np.float32),
    )


@dataclass
class Look:
    """The random appearance of one head."""

    skin: np.ndarray  # (3,) sRGB albedo
    hair: np.ndarray  # (3,)
    iris: np.ndarray  # (3,)
    lips: np.ndarray  # (3,)
    bald: bool
    hair_thickness: float  # metres
    hair_long: float  # metres the hair reaches below the ears at the back (0 = short)
    noise_freq: np.ndarray  # (K, 3) spatial frequencies of the skin's colour variation
    noise_phase: np.ndarray
    specular: float


def sample_look(rng: np.random.Generator, hair_p: float = 0.85) -> Look:
    t = rng.uniform(0, len(SKIN_TONES) - 1)
    i = int(t)
    j = min(i + 1, len(SKIN_TONES) - 1)
    skin = SKIN_TONES[i] * (1 - (t - i)) + SKIN_TONES[j] * (t - i)
    skin = np.clip(skin * rng.uniform(0.93, 1.05) + rng.normal(0, 0.015, 3), 0, 1)
    names = list(HAIR_COLORS)
    if rng.random() < 0.05:  # dyed
        hair = np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.8)))
    else:
        hair = np.array(HAIR_COLORS[names[rng.choice(len(names), p=HAIR_P / HAIR_P.sum())]])
    hair = np.clip(hair * rng.uniform(0.85, 1.15), 0, 1)
    lips = np.clip(skin * np.array([0.86, 0.6, 0.6]) + rng.normal(0, 0.02, 3), 0, 1)
    bald = rng.random() > hair_p
    long_hair = rng.random() < 0.35
    return Look(
        skin=skin,
        hair=hair,
        iris=IRIS_COLORS[rng.integers(len(IRIS_COLORS))],
        lips=lips,
        bald=bool(bald),
        hair_thickness=float(rng.uniform(0.006, 0.022)),
        hair_long=float(rng.uniform(0.05, 0.2) if long_hair else 0.0),
        noise_freq=rng.normal(0, 1, (4, 3)) * (2 * np.pi / 0.08),
        noise_phase=rng.uniform(0, 2 * np.pi, 4),
        specular=float(rng.uniform(0.05, 0.3)),
    )


def vertex_colors(assets: HeadAssets, look: Look) -> np.ndarray:
    """(V, 3) albedo of one head."""
    v = assets.template.astype(np.float64)
    w = assets.skin_weight
    variation = np.sin(v @ look.noise_freq.T + look.noise_phase).mean(1)
    col = look.skin[None] * (1.0 + 0.06 * variation)[:, None]
    # a warmer tint on lips/ears/cheeks
    col = (
        col * (1 - 0.25 * w["ears"])[:, None]
        + (look.skin * np.array([1.0, 0.8, 0.75]))[None] * (0.25 * w["ears"])[:, None]
    )

    def mix(c, weight):
        nonlocal col
        col = col * (1 - weight)[:, None] + np.asarray(c)[None] * weight[:, None]

    mix(look.lips, w["lips"])
    mix(np.clip(look.hair * 0.8 + look.skin * 0.15, 0, 1), w["brows"] * 0.85)
    if not look.bald:
        mix(look.hair, w["scalp"] * np.clip(assets.scalp_taper * 3, 0, 1))
    mix((0.45, 0.14, 0.14), w["mouth"])
    mix((0.78, 0.75, 0.71), w["sclera"])
    mix(look.iris, w["iris"])
    mix((0.02, 0.02, 0.02), w["pupil"])
    return np.clip(col, 0, 1).astype(np.float32)


def hair_shell(
    assets: HeadAssets, look: Look, vertices: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The hair volume of one head in the model frame: the scalp faces with their vertices pushed out
    along the normals (thick inside, zero at the hairline), plus, for long hair, the back pulled
    down. Returns (vertices (V, 3), faces (F, 3) into them, colours (V, 3), template coordinates
    (V, 3) for PNCC), or None for a bald head."""
    if look.bald or not len(assets.scalp_faces):
        return None
    idx = np.unique(assets.scalp_faces)
    remap = np.full(len(vertices), -1, np.int64)
    remap[idx] = np.arange(len(idx))
    faces = remap[assets.scalp_faces]
    n = vertex_normals(vertices, assets.faces)[idx].astype(np.float64)
    p = np.asarray(vertices, dtype=np.float64)[idx]
    taper = assets.scalp_taper[idx]
    wobble = 1.0 + 0.25 * np.sin(p @ look.noise_freq[:2].T * 0.7 + look.noise_phase[:2]).mean(1)
    shell = p + n * (look.hair_thickness * np.sqrt(taper) * wobble)[:, None]
    if look.hair_long > 0:
        # hair falls: the back and the sides below the crown are pulled down, more at the back
        top = p[:, 1].max()
        back = np.clip(-(p[:, 2] - p[:, 2].mean()) / 0.06, 0, 1)
        low = np.clip((top - p[:, 1]) / 0.12, 0, 1)
        shell[:, 1] -= look.hair_long * back * low**2 * taper
        shell[:, 2] -= 0.01 * back * low * taper
    streak = 1.0 + 0.12 * np.sin(p @ (look.noise_freq[2] * 3.0) + look.noise_phase[2])
    col = np.clip(look.hair[None] * streak[:, None], 0, 1)
    return shell, faces, col.astype(np.float32), assets.template[idx]
