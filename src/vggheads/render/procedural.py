"""Render backend ``procedural``: rasterised 3D heads on simple bodies, with exact per-head truth.

For every sample of the shard (one caption row, its seed, its skeletons from ``extract_poses``):

1. one head per skeleton: random shape, expression and jaw from the sample's seed; rotation, scale
   and 2D translation solved from the skeleton's nose, eyes and ears
   (:mod:`vggheads.render.placement`); depth order by scale (bigger = nearer);
2. the 413-value vector of each head is written first, and the mesh that is drawn is
   ``vggheads.geometry.decode`` of exactly those float32 values, so the truth is the picture;
3. skin, lips, eyes, brows and hair colours, a hair shell, a capsule body along the skeleton with
   clothes, a random background and random lights; everything is rasterised in one pass
   (:mod:`vggheads.render.raster`) at ``supersample`` x the canvas, then area-downsampled;
4. truth from the rasteriser's instance and depth buffers: the head box is the smallest box over
   the head's visible pixels (hair included, neck excluded), landmarks are visible when their
   pixel shows this head's surface at their depth and their triangle faces the camera, and the
   visible fraction compares with the head rendered alone. Heads with no visible pixel (occluded
   or outside the canvas) are dropped and counted. A head's truth and its ``render_heads`` rows
   are :mod:`vggheads.render.truth_rows`.

Same seed, same poses, same head model: same image bytes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..core.param_layout import SCALE_INDEX, TRANSLATION
from .truth_rows import HeadTruth, head_rows

log = logging.getLogger(__name__)

BODY_INSTANCE = 1000  # instance ids: head k -> 1 + k, body (and neck) k -> BODY_INSTANCE + 1 + k
DEFAULTS = {
    "n_shape": 100,
    "n_expr": 50,
    "shape_std": 0.8,
    "expr_std": 0.6,
    "jaw_open_max_deg": 20.0,
    "supersample": 2,
    "hair_p": 0.85,
    "backgrounds": ["gradient", "noise", "room", "shapes"],
    "background_blur": 0.01,
    "noise_std": 0.0,
    "min_visible_pixels": 1,
    "landmark_depth_tolerance": 0.003,
    "image_format": "png",
}


@dataclass
class SceneResult:
    image: np.ndarray  # (H, W, 3) uint8
    heads: list[HeadTruth]
    counts: dict
    frame: object = None  # the supersampled raster.Frame (for tests and debugging)
    supersample: int = 1
    vertices: list = field(default_factory=list)  # per kept head: (V, 3) image vertices (canvas pixels)
    meshes: list = field(default_factory=list)  # the raster.Mesh list that was drawn (supersampled pixels)
    mesh_kinds: list = field(default_factory=list)  # per mesh: "head", "neck", "hair" or "body" (scene conditions)


class ProceduralRenderer:
    """Holds the head model, its decoding layer, the appearance assets and the rasteriser."""

    def __init__(self, head_model, cfg: dict | None = None, min_confidence: float = 0.3):
        from ..geometry import FlameLayer
        from .heads import build_assets
        from .raster import get_rasterizer

        self.cfg = {**DEFAULTS, **(cfg or {})}
        self.model = head_model
        self.min_confidence = float(min_confidence)
        # only the sampled components are non-zero, so a layer over those gives the full model's
        # vertices (up to float rounding, ~1e-6 px) at a fraction of the cost
        self.layer = FlameLayer(head_model, n_shape=int(self.cfg["n_shape"]), n_expr=int(self.cfg["n_expr"]))
        self.assets = build_assets(head_model)
        self.raster = get_rasterizer()
        self.template_landmarks = head_model.landmarks_template().astype(np.float64)
        self._lmk_vertices = np.asarray(head_model.faces)[np.asarray(head_model.lmk_faces)]  # (68, 3)

    # ------------------------------------------------------------------ sampling
    def _sample_coefficients(self, rng: np.random.Generator, n: int):
        from ..core.param_layout import N_EXPR, N_SHAPE

        c = self.cfg
        shape = np.zeros((n, N_SHAPE))
        expr = np.zeros((n, N_EXPR))
        shape[:, : c["n_shape"]] = rng.normal(0, c["shape_std"], (n, c["n_shape"]))
        expr[:, : c["n_expr"]] = rng.normal(0, c["expr_std"], (n, c["n_expr"]))
        jaw = np.zeros((n, 3))
        open_ = rng.random(n) < 0.5
        jaw[:, 0] = np.where(open_, np.radians(rng.uniform(0, c["jaw_open_max_deg"], n)), 0.0)
        jaw[:, 1] = rng.normal(0, np.radians(1.5), n)
        jaw[:, 2] = rng.normal(0, np.radians(1.0), n)
        return shape, expr, jaw

    def _canonical(self, shape, expr, jaw) -> np.ndarray:
        import torch

        f = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))
        with torch.no_grad():
            return self.layer(f(shape), f(expr), f(jaw)).numpy().astype(np.float64)

    def _anchors(self, verts: np.ndarray):
        from .placement import anchors_from_mesh

        lm = np.einsum("lkc,lk->lc", verts[self._lmk_vertices], np.asarray(self.model.lmk_bary, np.float64))
        return anchors_from_mesh(verts, lm, self.assets.ear_left, self.assets.ear_right)

    # ------------------------------------------------------------------ one sample
    def render(
        self, persons: list[tuple[int, np.ndarray]], width: int, height: int, seed: int, full_frame: bool = False
    ) -> SceneResult:
        """Render one image. persons: (person id, COCO-17 keypoints (17, 3)) pairs in canvas pixels.

        full_frame: also read back the PNCC, triangle-id and facing buffers (tests, debugging).
        """
        import torch

        with torch.no_grad():  # geometry only: no autograd graph, and nothing leaks to the caller
            return self._render(persons, width, height, seed, full_frame)

    def _render(self, persons, width, height, seed, full_frame) -> SceneResult:
        import torch

        from ..geometry import N_PARAMS, FlameParams, decode, join_params, matrix_to_rot6d
        from . import bodies as B
        from .backgrounds import background
        from .heads import hair_shell, sample_look, vertex_colors
        from .placement import fit_head, head_rotation
        from .raster import ALL_OUTPUTS, Mesh

        cfg = self.cfg
        k = int(cfg["supersample"])
        rng = np.random.default_rng([int(seed), 0x9E0C])
        counts = {"persons": len(persons), "no_head_keypoints": 0, "occluded": 0, "outside": 0, "heads": 0}
        n = len(persons)
        shape, expr, jaw = self._sample_coefficients(rng, n)
        canon = self._canonical(shape, expr, jaw) if n else np.zeros((0, self.model.n_vertices, 3))

        # 1. head placement from the face keypoints
        placed = []  # (person index, R, s, t2)
        for i, (pid, kp) in enumerate(persons):
            kp = np.asarray(kp, dtype=np.float64).reshape(17, 3)
            anchors = self._anchors(canon[i])
            prior = _scale_prior(kp, self.min_confidence, width, height)
            fit = fit_head(kp, anchors, self.min_confidence, scale_prior=prior)
            if fit is None:
                fit = _fallback_placement(kp, anchors, prior, self.min_confidence, width, height, rng, head_rotation)
            if fit is None:
                counts["no_head_keypoints"] += 1
                continue
            placed.append((i, fit.R, fit.scale, fit.translation))
        # depth: bigger heads nearer (smaller z); separate persons by more than a body's depth
        s_max = max([p[2] for p in placed], default=1.0)
        order = sorted(range(len(placed)), key=lambda j: -placed[j][2])
        tz = np.zeros(len(placed))
        for rank, j in enumerate(order):
            tz[j] = rank * 1.5 * s_max
        params = []
        for j, (i, R, s, t2) in enumerate(placed):
            parts = FlameParams(
                shape=shape[i],
                expression=expr[i],
                jaw=jaw[i],
                rot6d=matrix_to_rot6d(torch.as_tensor(R)).numpy(),
                translation=np.array([t2[0], t2[1], tz[j]]),
                scale=np.array([s]),
            )
            params.append(join_params(parts))
        params = np.asarray(params, dtype=np.float32).reshape(len(placed), N_PARAMS)
        dec = decode(torch.from_numpy(params), self.layer) if len(placed) else None

        # 2. meshes (in canvas pixels; scaled by k for the supersampled raster)
        meshes: list[Mesh] = []
        kinds: list[str] = []  # what each mesh is, for the condition images of render.scene_conditions
        vertices_img = []
        for j, (i, R, s, t2) in enumerate(placed):
            pid, kp = persons[i]
            kp = np.asarray(kp, dtype=np.float64).reshape(17, 3)
            v_img = dec.vertices_image[j].numpy().astype(np.float64)
            vertices_img.append(v_img)
            look = sample_look(rng, cfg["hair_p"])
            colors = vertex_colors(self.assets, look)
            head_id, body_id = 1 + j, BODY_INSTANCE + 1 + j
            faces = self.assets.faces
            meshes.append(
                Mesh(
                    v_img * k,
                    faces[self.assets.head_faces],
                    colors,
                    instance=head_id,
                    pncc=self.assets.template,
                    specular=look.specular,
                )
            )
            kinds.append("head")
            if len(self.assets.neck_faces):
                meshes.append(
                    Mesh(
                        v_img * k,
                        faces[self.assets.neck_faces],
                        colors,
                        instance=body_id,
                        pncc=self.assets.template,
                        specular=look.specular,
                    )
                )
                kinds.append("neck")
            # hair: built in the model frame on the decoded canonical vertices, then projected like them
            canon_j = dec.vertices_canonical[j].numpy().astype(np.float64)
            hair = hair_shell(self.assets, look, canon_j, rng)
            if hair is not None:
                hv, hf, hc, ht = hair
                Rm = dec.R[j].numpy().astype(np.float64)
                hv_img = float(params[j, SCALE_INDEX]) * hv @ Rm.T + params[j, TRANSLATION].astype(np.float64)
                meshes.append(Mesh(hv_img * k, hf, hc, instance=head_id, pncc=ht, specular=0.05))
                kinds.append("hair")
            # body
            neck_top = v_img[self.assets.neck_bottom].mean(0) if len(self.assets.neck_bottom) else None
            joints = _body_joints(kp, self.min_confidence, width, height)
            facing = kp[0, 2] >= self.min_confidence
            z0 = (neck_top[2] if neck_top is not None else tz[j]) + 0.04 * s
            parts = B.body_parts(joints, s, z0, _clothes(rng, look), facing, neck_top, rng)
            if parts:
                bv, bf, bc = B.merge(parts)
                meshes.append(Mesh(bv * k, bf, bc, instance=body_id, specular=0.05))
                kinds.append("body")

        # 3. lights, background, raster
        lights = _sample_lights(rng)
        bg = background(rng, height, width, tuple(cfg["backgrounds"]), cfg["background_blur"], noise=0.0)
        bg_k = np.repeat(np.repeat(bg, k, axis=0), k, axis=1) if k > 1 else bg
        frame = self.raster.render(
            meshes, width * k, height * k, lights=lights, background=bg_k, outputs=ALL_OUTPUTS if full_frame else ()
        )
        if k > 1:
            import cv2

            image = cv2.resize(frame.color, (width, height), interpolation=cv2.INTER_AREA)
        else:
            image = frame.color.copy()
        if cfg["noise_std"] > 0:
            noisy = image.astype(np.float32) + rng.normal(0, cfg["noise_std"] * 255, image.shape).astype(np.float32)
            image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)

        # 4. truth
        heads, kept_vertices = [], []
        for j, (i, R, s, t2) in enumerate(placed):
            head_id = 1 + j
            mask = frame.instance == head_id
            npix = int(mask.sum())
            if npix < max(1, int(cfg["min_visible_pixels"]) * k * k):
                alone = self._alone_pixels(meshes, head_id, k)
                counts["outside" if _outside(vertices_img[j], width, height) or alone == 0 else "occluded"] += 1
                continue
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            box = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64) / k
            lm_img = dec.landmarks_image[j].numpy().astype(np.float64)
            vis = self._landmark_visibility(frame, lm_img, vertices_img[j], head_id, float(params[j, SCALE_INDEX]), k)
            alone = self._alone_pixels(meshes, head_id, k)
            heads.append(
                HeadTruth(
                    person=int(persons[i][0]),
                    params=params[j],
                    box=box.astype(np.float32),
                    landmarks=np.concatenate([lm_img[:, :2], vis[:, None]], axis=1).astype(np.float32),
                    yaw=float(dec.yaw[j]),
                    pitch=float(dec.pitch[j]),
                    roll=float(dec.roll[j]),
                    visible_fraction=float(npix / max(alone, npix)),
                    visible_pixels=npix,
                    instance=head_id,
                )
            )
            kept_vertices.append(vertices_img[j])
        counts["heads"] = len(heads)
        return SceneResult(
            image=image,
            heads=heads,
            counts=counts,
            frame=frame,
            supersample=k,
            vertices=kept_vertices,
            meshes=meshes,
            mesh_kinds=kinds,
        )

    def _landmark_visibility(
        self, frame, lm_img: np.ndarray, v_img: np.ndarray, head_id: int, scale: float, k: int
    ) -> np.ndarray:
        """(68,) 1.0 where a landmark is seen.

        A landmark is seen when its triangle faces the camera, its (supersampled) pixel shows this
        head, and nothing lies in front of the landmark's own surface there: the depth buffer at the
        pixel centre is not nearer than the landmark triangle's plane at that centre, up to
        ``landmark_depth_tolerance`` (metres, times the scale; covers the curvature between the
        triangle and its neighbours) + 0.5 px.
        """
        H, W = frame.instance.shape
        px = lm_img[:, 0] * k
        py = lm_img[:, 1] * k
        x, y = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
        inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
        xc, yc = np.clip(x, 0, W - 1), np.clip(y, 0, H - 1)
        tri = v_img[self._lmk_vertices] * k  # (68, 3 corners, 3)
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        normal_z = np.cross(b - a, c - a)[:, 2]
        front = normal_z < 0
        # the plane of the landmark's triangle at the pixel centre (barycentric extrapolation)
        cx, cy = xc + 0.5, yc + 0.5
        den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
        den = np.where(np.abs(den) < 1e-12, 1e-12, den)
        l1 = ((b[:, 1] - c[:, 1]) * (cx - c[:, 0]) + (c[:, 0] - b[:, 0]) * (cy - c[:, 1])) / den
        l2 = ((c[:, 1] - a[:, 1]) * (cx - c[:, 0]) + (a[:, 0] - c[:, 0]) * (cy - c[:, 1])) / den
        plane_z = l1 * a[:, 2] + l2 * b[:, 2] + (1 - l1 - l2) * c[:, 2]
        tol = self.cfg["landmark_depth_tolerance"] * scale * k + 0.5
        same = frame.instance[yc, xc] == head_id
        depth_ok = frame.depth[yc, xc] >= plane_z - tol
        return (inside & same & depth_ok & front).astype(np.float64)

    def _alone_pixels(self, meshes, head_id: int, k: int) -> int:
        """Pixels of head ``head_id`` (hair included, its own neck in front of it) rendered alone,
        inside or outside the canvas."""
        from .raster import Mesh

        own = [m for m in meshes if m.instance in (head_id, BODY_INSTANCE + head_id) and m.pncc is not None]
        if not own:
            return 0
        allv = np.concatenate([m.vertices for m in own])
        lo = np.floor(allv[:, :2].min(0)) - 1
        hi = np.ceil(allv[:, :2].max(0)) + 1
        size = hi - lo
        # round the window up so the framebuffer cache stays small
        wh = (np.ceil(size / 64) * 64).astype(int)
        shifted = [
            Mesh(m.vertices - np.array([lo[0], lo[1], 0.0]), m.faces, m.colors, instance=m.instance) for m in own
        ]
        f = self.raster.render(shifted, int(wh[0]), int(wh[1]), outputs=())
        return int((f.instance == head_id).sum())


# ---------------------------------------------------------------------------------------------
# helpers


def _outside(v_img: np.ndarray, width: int, height: int) -> bool:
    x, y = v_img[:, 0], v_img[:, 1]
    return bool(x.max() < 0 or y.max() < 0 or x.min() >= width or y.min() >= height)


def _usable(kp: np.ndarray, j: int, min_conf: float, width: int, height: int) -> bool:
    """A keypoint is used for the body when confident, or when it lies outside the canvas (a skeleton
    sampler's position for a limb out of frame; a real pose estimator reports nothing there)."""
    x, y, c = kp[j]
    if c >= min_conf:
        return True
    off = x < 0 or y < 0 or x >= width or y >= height
    return bool(off and (x != 0 or y != 0) and np.isfinite(x) and np.isfinite(y))


def _body_joints(kp: np.ndarray, min_conf: float, width: int, height: int) -> dict:
    return {j: kp[j, :2].copy() for j in range(5, 17) if _usable(kp, j, min_conf, width, height)}


def _scale_prior(kp: np.ndarray, min_conf: float, width: int, height: int) -> float | None:
    """Pixels per metre guessed from the body: torso length (shoulders to hips, ~0.5 m, unchanged by
    turning) or shoulder width (~0.38 m, shrinks when turning): the larger guess."""
    ok = lambda j: _usable(kp, j, min_conf, width, height)
    guesses = []
    if ok(5) and ok(6):
        sh = (kp[5, :2] + kp[6, :2]) / 2
        guesses.append(np.linalg.norm(kp[5, :2] - kp[6, :2]) / 0.38)
        if ok(11) and ok(12):
            hip = (kp[11, :2] + kp[12, :2]) / 2
            guesses.append(np.linalg.norm(sh - hip) / 0.5)
    good = [g for g in guesses if g > 1e-3]
    return float(max(good)) if good else None


def _fallback_placement(kp, anchors, prior, min_conf, width, height, rng, head_rotation):
    """A head over the shoulders when fewer than two face keypoints are confident (a person seen from
    behind, or a face cut off): turned away, scale from the body."""
    from .placement import Placement

    ok = lambda j: _usable(kp, j, min_conf, width, height)
    if not (ok(5) and ok(6)) or prior is None:
        return None
    neck = (kp[5, :2] + kp[6, :2]) / 2
    yaw = np.radians(180.0 + rng.normal(0, 20)) if kp[0, 2] < min_conf else np.radians(rng.normal(0, 30))
    R = head_rotation(yaw, np.radians(rng.normal(0, 8)), np.radians(rng.normal(0, 6)))
    s = prior
    ears = (anchors.points[3] + anchors.points[4]) / 2
    centre = neck - np.array([0.0, 0.27 * s])  # ear level ~27 cm above the shoulder line
    t = centre - s * (R @ ears)[:2]
    return Placement(R=R, scale=float(s), translation=t, cost=float("nan"), n_points=0, angles=(0.0, 0.0, 0.0))


def _sample_lights(rng: np.random.Generator):
    from .raster import Lights

    az = np.radians(rng.uniform(-70, 70))
    el = np.radians(rng.uniform(-10, 60))
    key = np.array([np.sin(az) * np.cos(el), -np.sin(el), -np.cos(az) * np.cos(el)])
    warm = rng.uniform(-0.08, 0.08)
    key_col = rng.uniform(0.55, 0.85) * np.array([1 + warm, 1.0, 1 - warm])
    amb = rng.uniform(0.25, 0.45)
    fill = -key * np.array([1, 0, 1]) + np.array([0, 0, -0.5])
    return Lights(
        ambient=(amb, amb, amb * rng.uniform(0.95, 1.05)),
        key_dir=tuple(key),
        key_color=tuple(key_col),
        fill_dir=tuple(fill),
        fill_color=tuple([rng.uniform(0.0, 0.25)] * 3),
        gamma=1.0,
        backface=0.25,
    )


def _clothes(rng: np.random.Generator, look) -> dict:
    import colorsys

    def col(sat=(0.1, 0.8), val=(0.1, 0.9)):
        return tuple(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)))

    bottoms = [(0.12, 0.15, 0.3), (0.1, 0.1, 0.1), (0.35, 0.3, 0.25), (0.2, 0.25, 0.4)]
    return {
        "top": col(),
        "bottom": bottoms[rng.integers(len(bottoms))] if rng.random() < 0.6 else col(),
        "skin": tuple(look.skin),
        "shoes": col((0, 0.3), (0.05, 0.4)),
        "sleeves": ["long", "short", "none"][rng.choice(3, p=[0.45, 0.4, 0.15])],
    }


# ---------------------------------------------------------------------------------------------
# the backend entry point


def render_shard(ctx):
    """Render every caption row of the shard; see the module docstring."""
    import io

    from PIL import Image
    from tqdm import tqdm

    from ..headmodel import load_head_model
    from . import RenderResult

    params = ctx.params
    cfg = {**DEFAULTS, **(params["render"].get("procedural") or {})}
    poses_cfg = params.get("poses", {})
    min_conf = float(poses_cfg.get("min_confidence", 0.3))
    model = load_head_model(ctx.head_model)
    renderer = ProceduralRenderer(model, cfg, min_confidence=min_conf)
    log.info(
        "procedural: head model '%s' (%d vertices), rasteriser %s, supersample %d",
        model.name,
        model.n_vertices,
        renderer.raster.renderer,
        cfg["supersample"],
    )

    persons_by_sample: dict[str, list] = {}
    size_by_sample: dict[str, tuple[int, int]] = {}
    for row in ctx.poses.to_pylist():
        persons_by_sample.setdefault(row["sample_id"], []).append(
            (int(row["person"]), np.asarray(row["keypoints"], dtype=np.float64).reshape(17, 3))
        )
        size_by_sample[row["sample_id"]] = (int(row["width"]), int(row["height"]))
    default_size = (int(poses_cfg.get("width", 512)), int(poses_cfg.get("height", 512)))

    images, heads = [], []
    totals: dict[str, float] = {}
    seconds = 0.0
    fmt = cfg["image_format"]
    ext = "jpg" if fmt == "jpg" else "png"
    captions = ctx.captions.to_pylist()
    for cap in tqdm(captions, desc=f"render {ctx.shard} (procedural)", unit="image"):
        sid = cap["sample_id"]
        start = time.perf_counter()
        width, height = size_by_sample.get(sid, default_size)
        persons = sorted(persons_by_sample.get(sid, []), key=lambda p: p[0])
        result = renderer.render(persons, width, height, int(cap["seed"]))
        name = f"{sid}.{ext}"
        buf = io.BytesIO()
        if ext == "jpg":
            Image.fromarray(result.image).save(buf, format="JPEG", quality=95)
        else:
            Image.fromarray(result.image).save(buf, format="PNG", optimize=False)
        (ctx.images_dir / name).write_bytes(buf.getvalue())
        seconds += time.perf_counter() - start
        for key, val in result.counts.items():
            totals[key] = totals.get(key, 0) + val
        images.append(
            {
                "sample_id": sid,
                "image": name,
                "width": width,
                "height": height,
                "backend": "procedural",
                "seed": int(cap["seed"]),
                "prompt": cap.get("prompt") or "",
                "negative_prompt": cap.get("negative_prompt") or "",
                "base_model": f"procedural:{model.name or ctx.head_model.name}",
                "condition_model": "coco17-keypoints",
            }
        )
        heads += head_rows(sid, result.heads)
    stats = {f"procedural_{k}": int(v) for k, v in totals.items()}
    stats["gl_renderer"] = renderer.raster.renderer
    if images:
        stats["seconds_per_image"] = round(seconds / len(images), 4)  # the render stage logs it, writes it nowhere
    return RenderResult(images=images, heads=heads, stats=stats)
