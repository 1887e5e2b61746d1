"""Condition images of a procedural scene, for SDXL ControlNets (``render.sdxl.conditioning: head-mesh``).

The ``procedural`` backend builds, per sample, a scene of heads placed on the skeletons (random
shape, expression, jaw; pose fitted to the face keypoints) and knows its exact truth. Here the same
scene, built by the same :class:`~vggheads.render.procedural.ProceduralRenderer` at the size SDXL
will paint, is turned into the images the ControlNets expect:

- ``pncc``: the head meshes coloured by their template coordinates (x, y, z of the template, each
  scaled to [0, 1] over the head's vertices with 0 inside the range: red = the head's left-right,
  green = up, blue = out of the face), on black, as ``head_detector``'s ``PNCCProcessor`` renders
  the condition of the paper's ``okupyn/head-mesh-controlnet-xl``. Hair is left out (that
  ControlNet saw bare FLAME heads and paints the hair itself); bodies and necks hide the heads
  behind them (they are drawn black), so what the PNCC shows is what the truth calls visible,
  the hair aside;
- ``depth``: the whole scene (heads, hair, necks, bodies), near = bright, background black, like
  the DPT/MiDaS maps depth ControlNets are trained on. The scene's persons stand 1.5 m apart in
  depth, so a linear map would leave each head almost flat: the foreground is equalised by rank
  (nearest pixel 1.0, farthest 0.2), which keeps the order everywhere and the relief of every head.

The OpenPose skeleton is the ``extract_poses`` condition image (the skeleton the scene was placed
on), resized as in the pose-only modes. Keypoints are scaled from the pose canvas to the render
size (x and y separately, as the skeleton image is) before the heads are fitted, so the truth is
in the pixels of the painted image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAPS = ("pncc", "depth")
DEPTH_FLOOR = 0.2  # the farthest foreground pixel's value; background is 0


@dataclass
class SceneConditions:
    heads: list  # truth_rows.HeadTruth per kept head (render pixels)
    maps: dict[str, np.ndarray]  # name -> (H, W, 3) uint8 condition image
    counts: dict = field(default_factory=dict)  # the procedural scene's counts (persons, heads, drops)
    image: np.ndarray | None = None  # the procedural colour render of the same scene


def pncc_colors(template: np.ndarray, vertex_ids: np.ndarray) -> np.ndarray:
    """Per-vertex PNCC colours: the template scaled per axis to [0, 1] over ``vertex_ids``.

    As ``head_detector.pncc_processor.compute_ncc_color_codes``: the range of each axis includes 0
    (``min(initial=0)``, ``max(initial=0)``); vertices outside the subset are clipped.
    """
    t = np.asarray(template, dtype=np.float64)
    sub = t[np.asarray(vertex_ids, dtype=np.int64)]
    lo = np.minimum(sub.min(axis=0), 0.0)
    hi = np.maximum(sub.max(axis=0), 0.0)
    return np.clip((t - lo) / np.where(hi - lo > 0, hi - lo, 1.0), 0.0, 1.0)


def depth_map(depth: np.ndarray) -> np.ndarray:
    """(H, W) image z (smaller = nearer, ``inf`` = background) -> (H, W, 3) uint8, near = bright.

    Foreground values are equalised by rank: the nearest pixel is 255, the farthest
    ``DEPTH_FLOOR`` x 255, equal depths equal values; background 0.
    """
    depth = np.asarray(depth, dtype=np.float64)
    out = np.zeros(depth.shape, dtype=np.float64)
    fg = np.isfinite(depth)
    if fg.any():
        z = depth[fg]
        order = np.unique(z)
        rank = np.searchsorted(order, z) / max(len(order) - 1, 1)  # 0 = nearest, 1 = farthest
        out[fg] = 1.0 - (1.0 - DEPTH_FLOOR) * rank
    value = np.rint(out * 255.0).astype(np.uint8)
    return np.repeat(value[..., None], 3, axis=2)


def min_pool(a: np.ndarray, k: int) -> np.ndarray:
    """(H k, W k) -> (H, W): the nearest depth of each k x k block."""
    if k == 1:
        return a
    H, W = a.shape[0] // k, a.shape[1] // k
    return a[: H * k, : W * k].reshape(H, k, W, k).min(axis=(1, 3))


def scale_persons(persons: list, canvas: tuple[int, int], size: tuple[int, int]) -> list:
    """COCO-17 keypoints (x, y, confidence) from the pose canvas to the render size (x, y scaled apart)."""
    sx, sy = size[0] / canvas[0], size[1] / canvas[1]
    out = []
    for pid, kp in persons:
        kp = np.asarray(kp, dtype=np.float64).reshape(17, 3).copy()
        kp[:, 0] *= sx
        kp[:, 1] *= sy
        out.append((pid, kp))
    return out


class SceneConditioner:
    """The procedural scene of a sample at the render size, its exact truth and its condition images."""

    def __init__(self, head_model, procedural_cfg: dict | None = None, min_confidence: float = 0.3):
        from .procedural import ProceduralRenderer

        self.renderer = ProceduralRenderer(head_model, procedural_cfg, min_confidence=min_confidence)
        assets = self.renderer.assets
        self.colors = pncc_colors(assets.template, np.unique(assets.faces[assets.head_faces]))

    @property
    def gl_renderer(self) -> str:
        return self.renderer.raster.renderer

    def __call__(
        self, persons: list, canvas: tuple[int, int], size: tuple[int, int], seed: int, maps: tuple[str, ...] = MAPS
    ) -> SceneConditions:
        """persons: (person id, (17, 3) keypoints in canvas pixels); size: (width, height) of the render."""
        unknown = set(maps) - set(MAPS)
        if unknown:
            raise ValueError(f"unknown condition maps {sorted(unknown)} (known: {', '.join(MAPS)})")
        width, height = int(size[0]), int(size[1])
        scene = self.renderer.render(scale_persons(persons, canvas, size), width, height, int(seed))
        out = {}
        if "pncc" in maps:
            out["pncc"] = self._pncc(scene, width, height)
        if "depth" in maps:
            out["depth"] = depth_map(min_pool(scene.frame.depth, scene.supersample))
        return SceneConditions(heads=scene.heads, maps=out, counts=dict(scene.counts), image=scene.image)

    def _pncc(self, scene, width: int, height: int) -> np.ndarray:
        """Kept heads in PNCC colours, hidden where a body or neck is in front; hair left out."""
        from .raster import Mesh

        k = scene.supersample
        kept = {h.instance for h in scene.heads}
        meshes = []
        for m, kind in zip(scene.meshes, scene.mesh_kinds):
            if kind == "hair":
                continue
            v = np.asarray(m.vertices, dtype=np.float64) / k
            if kind == "head" and m.instance in kept:
                meshes.append(Mesh(v, m.faces, (0.0, 0.0, 0.0), instance=m.instance, pncc=self.colors))
            else:  # bodies, necks, and heads with no visible pixel: black occluders
                meshes.append(Mesh(v, m.faces, (0.0, 0.0, 0.0), instance=m.instance))
        frame = self.renderer.raster.render(meshes, width, height, outputs=("pncc",))
        return np.rint(np.clip(frame.pncc, 0.0, 1.0) * 255.0).astype(np.uint8)


__all__ = ["MAPS", "SceneConditions", "SceneConditioner", "depth_map", "pncc_colors", "scale_persons", "min_pool"]
