"""Simple bodies for the procedural renderer: tapered capsules along the COCO-17 limbs and a lofted
torso, built directly in image coordinates (x right, y down, z depth in pixels, smaller = nearer).

A body is decorative: it carries no truth, it only has to look like a clothed person under the
head and to occlude the heads of the people behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# COCO-17 indices
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 11, 12, 13, 14, 15, 16


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to the unit ``axis`` and to each other."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(axis, e1)


def _loft(
    centres: np.ndarray, axes1: np.ndarray, axes2: np.ndarray, r1: np.ndarray, r2: np.ndarray, n_around: int
) -> tuple[np.ndarray, np.ndarray]:
    """A closed tube through rings: ring k is ``centres[k] + r1[k] cos(a) axes1[k] + r2[k] sin(a) axes2[k]``.

    Rings of zero radius at either end collapse to one pole vertex. Returns vertices (V, 3), faces (F, 3).
    """
    a = np.linspace(0.0, 2 * np.pi, n_around, endpoint=False)
    ca, sa = np.cos(a), np.sin(a)
    verts, rings = [], []
    for c, e1, e2, ra, rb in zip(centres, axes1, axes2, r1, r2):
        if ra <= 1e-9 and rb <= 1e-9:
            rings.append([len(verts)])
            verts.append(c)
        else:
            idx = list(range(len(verts), len(verts) + n_around))
            verts.extend(c + ra * ca[:, None] * e1 + rb * sa[:, None] * e2)
            rings.append(idx)
    faces = []
    for r0, r1_ in zip(rings[:-1], rings[1:]):
        if len(r0) == 1 and len(r1_) == 1:
            continue
        if len(r0) == 1:
            faces += [(r0[0], r1_[(i + 1) % n_around], r1_[i]) for i in range(n_around)]
        elif len(r1_) == 1:
            faces += [(r0[i], r0[(i + 1) % n_around], r1_[0]) for i in range(n_around)]
        else:
            for i in range(n_around):
                j = (i + 1) % n_around
                faces += [(r0[i], r0[j], r1_[j]), (r0[i], r1_[j], r1_[i])]
    return np.asarray(verts, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def capsule(
    a, b, ra: float, rb: float | None = None, n_around: int = 14, n_cap: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """A tapered capsule from point ``a`` (radius ``ra``) to ``b`` (radius ``rb``); 3D points in pixels."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rb = ra if rb is None else rb
    d = b - a
    length = float(np.linalg.norm(d))
    axis = d / length if length > 1e-9 else np.array([0.0, 1.0, 0.0])
    e1, e2 = _frame(axis)
    centres, r = [], []
    for k in range(n_cap, -1, -1):  # cap around a, from the pole to the equator
        phi = np.pi / 2 * k / n_cap
        centres.append(a - axis * ra * np.sin(phi))
        r.append(ra * np.cos(phi))
    for k in range(0, n_cap + 1):  # cap around b, from the equator to the pole
        phi = np.pi / 2 * k / n_cap
        centres.append(b + axis * rb * np.sin(phi))
        r.append(rb * np.cos(phi))
    n = len(centres)
    r = np.asarray(r)
    return _loft(np.asarray(centres), np.tile(e1, (n, 1)), np.tile(e2, (n, 1)), r, r, n_around)


def torso(
    neck,
    pelvis,
    shoulder_axis,
    half_width_top: float,
    half_width_bottom: float,
    half_depth: float,
    n_rings: int = 14,
    n_around: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """A torso from the ``neck`` (shoulder midpoint) to the ``pelvis`` (hip midpoint).

    Elliptic cross-sections: half width from ``half_width_top`` (shoulders) through a narrower waist
    to ``half_width_bottom`` (hips) along ``shoulder_axis`` (a direction across the body), rounded
    shoulders at the top and a rounded bottom.
    """
    neck, pelvis = np.asarray(neck, float), np.asarray(pelvis, float)
    d = pelvis - neck
    length = float(np.linalg.norm(d))
    down = d / length if length > 1e-9 else np.array([0.0, 1.0, 0.0])
    across = np.asarray(shoulder_axis, float)
    across = across - down * (across @ down)
    if np.linalg.norm(across) < 1e-6:
        across, _ = _frame(down)
    across /= np.linalg.norm(across)
    depth_axis = np.cross(down, across)
    t = np.linspace(0.0, 1.0, n_rings)
    # start above the neck point (shoulder tops), end a little below the hips
    s = -0.1 + 1.18 * t
    width = np.interp(t, [0.0, 0.1, 0.55, 1.0], [0.75, 1.0, 0.86, 1.0])
    width *= np.interp(t, [0.0, 1.0], [half_width_top, half_width_bottom])
    round_top = np.clip(t / 0.08, 0, 1) ** 0.35  # shoulders close over the top, a flat-ish collar
    round_bottom = np.sqrt(np.clip((1 - t) / 0.06, 0, 1))
    closing = round_top * round_bottom
    centres = neck[None] + (s * length)[:, None] * down[None]
    r1 = width * np.maximum(closing, 0.0)
    r2 = half_depth * np.maximum(closing, 0.0) * np.interp(t, [0.0, 0.3, 1.0], [0.7, 1.0, 0.95])
    r1[0] = r2[0] = 0.0
    r1[-1] = r2[-1] = 0.0
    return _loft(centres, np.tile(across, (n_rings, 1)), np.tile(depth_axis, (n_rings, 1)), r1, r2, n_around)


@dataclass
class BodyPart:
    vertices: np.ndarray
    faces: np.ndarray
    color: tuple[float, float, float]
    specular: float = 0.05


def merge(parts: list[BodyPart]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate parts into one mesh: vertices (V, 3), faces (F, 3), per-vertex colours (V, 3)."""
    verts, faces, cols, off = [], [], [], 0
    for p in parts:
        verts.append(p.vertices)
        faces.append(p.faces + off)
        cols.append(np.tile(np.asarray(p.color, float), (len(p.vertices), 1)))
        off += len(p.vertices)
    if not verts:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3))
    return np.concatenate(verts), np.concatenate(faces), np.concatenate(cols)


def body_parts(
    joints: dict[int, np.ndarray],
    scale: float,
    z0: float,
    clothes: dict,
    facing_camera: bool,
    neck_top: np.ndarray | None,
    rng: np.random.Generator,
) -> list[BodyPart]:
    """The parts of one body.

    joints: COCO index -> (x, y) image position of the joints that are known (missing limbs are
    skipped); scale: pixels per metre (the head's scale); z0: depth of the body's mid-plane;
    clothes: colours {"top", "bottom", "skin", "shoes"} and "sleeves" ("long" | "short" | "none");
    facing_camera: arms go in front of the torso when true, behind it otherwise;
    neck_top: (3,) image point where the neck meets the head mesh, or None.
    """
    parts: list[BodyPart] = []
    s = float(scale)
    arm_z = -0.06 * s if facing_camera else 0.06 * s

    def p3(k, dz=0.0):
        x, y = joints[k]
        return np.array([x, y, z0 + dz])

    have = set(joints)
    if {L_SHOULDER, R_SHOULDER} <= have:
        ls, rs = p3(L_SHOULDER), p3(R_SHOULDER)
        neck = (ls + rs) / 2
        shoulder_half = max(np.linalg.norm((ls - rs)[:2]) / 2, 0.06 * s)
        if {L_HIP, R_HIP} <= have:
            lh, rh = p3(L_HIP), p3(R_HIP)
            pelvis = (lh + rh) / 2
            hip_half = max(np.linalg.norm((lh - rh)[:2]) / 2 * 1.15, 0.1 * s)
        else:
            pelvis = neck + np.array([0.0, 0.5 * s, 0.0])
            hip_half = max(shoulder_half * 0.85, 0.1 * s)
        v, f = torso(neck, pelvis, ls - rs, shoulder_half * 1.12, hip_half, 0.11 * s)
        parts.append(BodyPart(v, f, clothes["top"]))
        if neck_top is not None:
            # from inside the chest up into the head's own neck, so neither end shows
            nb = neck + np.array([0.0, 0.06 * s, 0.02 * s])
            nt = np.asarray(neck_top, float) + np.array([0.0, -0.04 * s, 0.0])
            v, f = capsule(nb, nt, 0.05 * s, 0.044 * s)
            parts.append(BodyPart(v, f, clothes["skin"], specular=0.1))
        arm_col = {
            "long": (clothes["top"], clothes["top"]),
            "short": (clothes["top"], clothes["skin"]),
            "none": (clothes["skin"], clothes["skin"]),
        }[clothes["sleeves"]]
        for sh, el, wr in ((L_SHOULDER, L_ELBOW, L_WRIST), (R_SHOULDER, R_ELBOW, R_WRIST)):
            if el not in have:
                continue
            a = p3(sh, arm_z * 0.5)
            b = p3(el, arm_z)
            v, f = capsule(a, b, 0.056 * s, 0.046 * s)
            parts.append(BodyPart(v, f, arm_col[0]))
            if wr in have:
                c = p3(wr, arm_z)
                v, f = capsule(b, c, 0.044 * s, 0.034 * s)
                parts.append(BodyPart(v, f, arm_col[1]))
                # a hand: a short flattened capsule past the wrist
                d = c - b
                n = np.linalg.norm(d[:2])
                hand_end = c + (d / n * 0.08 * s if n > 1e-6 else np.array([0.0, 0.08 * s, 0.0]))
                v, f = capsule(c, hand_end, 0.034 * s, 0.028 * s, n_around=10, n_cap=3)
                parts.append(BodyPart(v, f, clothes["skin"], specular=0.1))
    for hip, knee, ankle in ((L_HIP, L_KNEE, L_ANKLE), (R_HIP, R_KNEE, R_ANKLE)):
        if hip not in have or knee not in have:
            continue
        a, b = p3(hip), p3(knee)
        v, f = capsule(a, b, 0.095 * s, 0.066 * s)
        parts.append(BodyPart(v, f, clothes["bottom"]))
        if ankle in have:
            c = p3(ankle)
            v, f = capsule(b, c, 0.064 * s, 0.045 * s)
            parts.append(BodyPart(v, f, clothes["bottom"]))
            foot = c + np.array([0.0, 0.03 * s, -0.12 * s if facing_camera else 0.12 * s])
            v, f = capsule(c, foot, 0.045 * s, 0.04 * s, n_around=10, n_cap=3)
            parts.append(BodyPart(v, f, clothes["shoes"]))
    return parts
