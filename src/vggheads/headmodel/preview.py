"""A small orthographic preview of a head mesh (painter's algorithm with PIL), for docs and checks.

Not the project's rasteriser (``vggheads.render.raster``): no depth buffer, just triangles drawn
back to front with Lambert shading, which is enough to look at a head model.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SKIN = (222, 178, 150)
REGION_COLOURS = {  # drawn in this order; later regions win
    "neck": (214, 170, 142),
    "scalp": (92, 62, 40),
    "brows": (80, 55, 38),
    "lips": (190, 105, 100),
    "ears": (218, 168, 142),
    "mouth_interior": (90, 25, 30),
    "eyes": (240, 240, 235),
    "iris": (70, 110, 150),
    "pupil": (15, 15, 20),
}


def vertex_colours(model) -> np.ndarray:
    """(V, 3) float RGB in 0..1 from the model's regions (plain skin where it has none)."""
    colours = np.tile(np.array(SKIN, dtype=float) / 255.0, (model.n_vertices, 1))
    for name, rgb in REGION_COLOURS.items():
        if name in model.regions:
            colours[model.regions[name]] = np.array(rgb) / 255.0
    return colours


def yaw_matrix(yaw_deg: float, pitch_deg: float = 0.0) -> np.ndarray:
    """Model-frame rotation turning the head by ``yaw`` (to the subject's left) and ``pitch`` (chin down)."""
    y, p = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    Ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return Rx @ Ry


def render_view(
    vertices: np.ndarray,
    faces: np.ndarray,
    colours: np.ndarray,
    size: int = 400,
    rotation: np.ndarray | None = None,
    extent: float = 0.16,
    centre=(0.0, -0.01, 0.0),
    points: np.ndarray | None = None,
    wire: bool = False,
    background=(255, 255, 255),
) -> Image.Image:
    """Draw a mesh (model frame: y up, z towards the viewer) seen from the front after ``rotation``.

    vertices (V, 3); faces (F, 3); colours (V, 3) in 0..1; ``extent`` is the half width of the
    view in model units; ``points`` (N, 3) are drawn as red dots (landmarks), hidden ones in pale.
    """
    R = np.eye(3) if rotation is None else rotation
    v = (vertices - np.asarray(centre)) @ R.T
    tri = v[faces]  # (F, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    visible = n[:, 2] > 0  # back-face culling
    light = np.array([-0.35, 0.45, 0.82])
    light /= np.linalg.norm(light)
    shade = 0.30 + 0.70 * np.clip(n @ light, 0, 1)
    col = colours[faces].mean(1) * shade[:, None]
    order = np.argsort(tri[:, :, 2].mean(1))  # far to near
    order = order[visible[order]]
    scale = size / (2 * extent)
    xy = np.stack([size / 2 + tri[..., 0] * scale, size / 2 - tri[..., 1] * scale], axis=-1)
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    for i in order:
        rgb = tuple(int(c) for c in np.clip(col[i] * 255, 0, 255))
        draw.polygon([tuple(p) for p in xy[i]], fill=rgb, outline=(40, 40, 40) if wire else rgb)
    if points is not None:
        pv = (points - np.asarray(centre)) @ R.T
        for k, p in enumerate(pv):
            x, y = size / 2 + p[0] * scale, size / 2 - p[1] * scale
            r = max(1.5, size / 220)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(230, 20, 20))
    return img


def grid_image(images: list[Image.Image], columns: int, labels: list[str] | None = None) -> Image.Image:
    """Tile equally sized images into rows of ``columns``, with an optional caption under each."""
    w, h = images[0].size
    pad = 18 if labels else 0
    rows = (len(images) + columns - 1) // columns
    out = Image.new("RGB", (columns * w, rows * (h + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for k, im in enumerate(images):
        x, y = (k % columns) * w, (k // columns) * (h + pad)
        out.paste(im, (x, y))
        if labels:
            draw.text((x + 6, y + h + 2), labels[k], fill=(0, 0, 0))
    return out
