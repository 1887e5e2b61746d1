"""Drawing head annotations over images: boxes, 68 landmarks (visible vs occluded), mesh wireframes,
pose axes. Used by ``vggheads draw`` and by anything that shows predictions or truth (overlays,
reports).

All coordinates are image pixels in the project's convention (x right, y down, continuous: the pixel
in column ``c`` spans ``[c, c+1)``), so a point at ``(x, y)`` is drawn at ``(x - 0.5, y - 0.5)`` in
OpenCV's pixel-centre convention, with 4 bits of sub-pixel precision. Images are RGB uint8 arrays
(H, W, 3); every function draws in place and returns the image.
"""

from __future__ import annotations

import numpy as np

_SHIFT = 4
_ONE = 1 << _SHIFT

# distinct colours for heads (RGB)
PALETTE = [
    (255, 64, 64),
    (64, 200, 255),
    (255, 200, 0),
    (120, 255, 120),
    (255, 96, 255),
    (255, 150, 60),
    (80, 120, 255),
    (0, 230, 180),
    (230, 230, 230),
    (180, 100, 255),
]
VISIBLE = (40, 255, 40)
OCCLUDED = (255, 40, 40)
AXES = ((255, 40, 40), (40, 220, 40), (60, 120, 255))  # head x (subject's left), y (up), z (forward)

# iBUG 68: the point ranges that form polylines (closed ones flagged)
LANDMARK_GROUPS = [
    (0, 17, False),
    (17, 22, False),
    (22, 27, False),
    (27, 31, False),
    (31, 36, False),
    (36, 42, True),
    (42, 48, True),
    (48, 60, True),
    (60, 68, True),
]


def color_for(index: int) -> tuple[int, int, int]:
    return PALETTE[int(index) % len(PALETTE)]


def _pt(xy) -> tuple[int, int]:
    return int(round((float(xy[0]) - 0.5) * _ONE)), int(round((float(xy[1]) - 0.5) * _ONE))


def _finite(a) -> bool:
    return bool(np.all(np.isfinite(np.asarray(a, dtype=np.float64))))


def draw_box(img: np.ndarray, box, color=(255, 64, 64), label: str | None = None, thickness: int = 1) -> np.ndarray:
    """Draw ``box`` = [x1, y1, x2, y2] (pixel edges: the box of pixel (r, c) alone is [c, r, c+1, r+1]).

    The outline runs on the pixels just outside the box, so it hides nothing inside it.
    """
    import cv2

    if not _finite(box):
        return img
    x1, y1, x2, y2 = (float(v) for v in box)
    p1 = (int(round((x1 - 1) * _ONE)), int(round((y1 - 1) * _ONE)))
    p2 = (int(round(x2 * _ONE)), int(round(y2 * _ONE)))
    cv2.rectangle(img, p1, p2, color, thickness, cv2.LINE_8, _SHIFT)
    if label:
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        x0, y0 = int(x1) - 1, max(int(y1) - 2, th + base + 1)
        cv2.rectangle(img, (x0, y0 - th - base - 1), (x0 + tw + 2, y0), (0, 0, 0), -1)
        cv2.putText(img, label, (x0 + 1, y0 - base), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    return img


def draw_landmarks(
    img: np.ndarray,
    landmarks,
    radius: float = 1.5,
    lines: bool = True,
    visible_color=VISIBLE,
    occluded_color=OCCLUDED,
    line_color=None,
) -> np.ndarray:
    """Draw 68 landmarks, (68, 2) or (68, 3) with a visibility in the third column.

    Visible points are filled dots in ``visible_color``; occluded ones (visibility < 0.5) hollow
    circles in ``occluded_color``. ``lines`` joins the iBUG groups (jaw, brows, nose, eyes, lips).
    """
    import cv2

    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim == 1:
        lm = lm.reshape(-1, 3)
    vis = lm[:, 2] >= 0.5 if lm.shape[1] == 3 else np.ones(len(lm), bool)
    if lines and len(lm) == 68:
        lc = line_color or tuple(int(c * 0.6) for c in visible_color)
        for start, stop, closed in LANDMARK_GROUPS:
            pts = np.array([_pt(p) for p in lm[start:stop, :2] if _finite(p)], np.int32)
            if len(pts) > 1:
                cv2.polylines(img, [pts], closed, lc, 1, cv2.LINE_AA, _SHIFT)
    r = int(round(radius * _ONE))
    for p, v in zip(lm[:, :2], vis):
        if not _finite(p):
            continue
        if v:
            cv2.circle(img, _pt(p), r, visible_color, -1, cv2.LINE_AA, _SHIFT)
        else:
            cv2.circle(img, _pt(p), r + _ONE // 2, occluded_color, 1, cv2.LINE_AA, _SHIFT)
    return img


def front_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Boolean (F,): triangles whose normal faces the camera (-z) in image coordinates."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    return n[:, 2] < 0


def draw_wireframe(
    img: np.ndarray,
    vertices,
    faces,
    color=(255, 255, 255),
    alpha: float = 0.35,
    only_front: bool = True,
    faces_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Blend the triangle edges of a mesh in image coordinates ((V, 3) or (V, 2)) over ``img``.

    only_front: draw only triangles facing the camera (needs z); faces_mask: an extra (F,) selection.
    """
    import cv2

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    keep = np.ones(len(f), bool) if faces_mask is None else np.asarray(faces_mask, bool).copy()
    if only_front and v.shape[1] >= 3:
        keep &= front_faces(v, f)
    f = f[keep]
    if not len(f):
        return img
    pts = np.rint((v[:, :2] - 0.5) * _ONE).astype(np.int64)
    # a triangle far outside the int range of OpenCV is dropped rather than wrapped
    ok = np.all(np.abs(pts[f]) < 2**28, axis=(1, 2))
    polys = [p.astype(np.int32) for p in pts[f[ok]]]
    layer = img.copy()
    cv2.polylines(layer, polys, True, color, 1, cv2.LINE_AA, _SHIFT)
    np.copyto(img, cv2.addWeighted(layer, alpha, img, 1.0 - alpha, 0))
    return img


def draw_axes(img: np.ndarray, R, origin, length: float, thickness: int = 2) -> np.ndarray:
    """Draw the head's axes: columns of ``R`` (3, 3) (head x, y, z in image space) scaled by
    ``length`` pixels from ``origin`` (x, y). Red = x (subject's left), green = y (up), blue = z
    (where the face looks). The axis pointing most into the screen is drawn first."""
    import cv2

    R = np.asarray(R, dtype=np.float64)
    o = np.asarray(origin, dtype=np.float64)[:2]
    if not (_finite(R) and _finite(o)):
        return img
    order = np.argsort(-R[2])  # farthest (largest z) first
    for k in order:
        tip = o + length * R[:2, k]
        cv2.arrowedLine(img, _pt(o), _pt(tip), AXES[k], thickness, cv2.LINE_AA, _SHIFT, 0.15)
    return img


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement so pixels stay visible; coordinates then scale by ``factor``."""
    if factor == 1:
        return img.copy()
    return np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)


def draw_head(
    img: np.ndarray,
    index: int,
    box=None,
    landmarks=None,
    vertices=None,
    faces=None,
    R=None,
    scale: float | None = None,
    label: str | None = None,
    what: tuple[str, ...] = ("box", "landmarks", "mesh", "axes"),
    factor: float = 1.0,
    faces_mask=None,
) -> np.ndarray:
    """Draw one head's annotation; coordinates are multiplied by ``factor`` (for upscaled images)."""
    col = color_for(index)
    if "mesh" in what and vertices is not None and faces is not None:
        v = np.asarray(vertices, dtype=np.float64) * factor
        draw_wireframe(img, v, faces, color=col, alpha=0.2, faces_mask=faces_mask)
    if "box" in what and box is not None:
        draw_box(img, np.asarray(box, dtype=np.float64) * factor, col, label)
    if "landmarks" in what and landmarks is not None:
        lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 3).copy()
        lm[:, :2] *= factor
        draw_landmarks(img, lm, radius=1.2 + 0.6 * factor, line_color=col)
    if "axes" in what and R is not None and landmarks is not None:
        lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 3)
        origin = lm[30, :2] * factor if len(lm) > 30 else lm[:, :2].mean(0) * factor
        length = 0.1 * float(scale) * factor if scale else 20.0 * factor  # 10 cm at the head's scale
        draw_axes(img, R, origin, length)
    return img
