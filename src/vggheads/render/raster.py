"""Triangle rasteriser on moderngl with a headless EGL context (Mesa llvmpipe on a CPU, the NVIDIA
driver's EGL on a GPU machine).

One pass renders, for every pixel:

- ``color``  (H, W, 3) uint8: per-vertex colour shaded by an ambient term, Lambert diffuse and a
  Blinn-Phong highlight from up to two directional lights (two-sided: a surface seen from behind
  is lit with its flipped normal, and its colour multiplied by ``Lights.backface``: the inside of
  an open mouth is dark);
- ``pncc``   (H, W, 3) float32: the mesh's per-vertex template coordinates (PNCC), interpolated;
- ``depth``  (H, W) float32: the image-space z of the nearest surface (``inf`` on background);
- ``instance`` (H, W) int32: the ``instance`` number of the mesh seen there (0 = background), so
  visibility and occlusion per object are exact;
- ``face``   (H, W) int32: the triangle seen there, as an index into that mesh's ``faces`` (-1 on
  background);
- ``facing`` (H, W) float32: z of the unit surface normal (negative = the surface faces the camera);
- ``inside`` (H, W) bool: the triangle is seen from behind (meshes are wound counter-clockwise
  seen from outside, as FLAME's are).

Coordinates are image coordinates, the convention of :func:`vggheads.geometry.project`: x right and
y down in pixels, z = depth (smaller is nearer the camera), orthographic. Pixel ``(row, col)``
covers ``[col, col+1) x [row, row+1)``; it is covered by a triangle when its centre
``(col + 0.5, row + 0.5)`` is (GL's rasterisation rule). Arrays come back in image order (row 0 =
top), no flip needed.

One GL context per process is created lazily and reused (:func:`gl_context`); its
``GL_RENDERER`` is logged once so a silent software fallback on a GPU machine is visible.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import VggheadsError

log = logging.getLogger(__name__)

EGL_PACKAGES = "libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri"


class RasterError(VggheadsError):
    """No usable OpenGL context (EGL missing or broken)."""


_CTX = None


def gl_context():
    """The process-wide moderngl context (standalone, EGL); created on first use."""
    global _CTX
    if _CTX is None:
        try:
            import moderngl
        except ImportError as exc:  # pragma: no cover - moderngl is a pinned dependency
            raise RasterError(f"moderngl is not installed ({exc}); run `make env`") from None
        try:
            # Mesa's llvmpipe loads its own LLVM; triton (imported lazily by torch._dynamo, e.g. via
            # torchvision.ops) bundles another, and importing it after the EGL context exists
            # segfaults. Loading triton first makes the two coexist.
            import triton  # noqa: F401
        except ImportError:
            pass
        try:
            ctx = moderngl.create_context(standalone=True, backend="egl", require=330)
        except Exception as exc:
            raise RasterError(
                f"cannot create a headless OpenGL context through EGL ({type(exc).__name__}: {exc}). "
                f"The procedural renderer needs EGL and Mesa's llvmpipe (or a GPU driver's EGL). On "
                f"Debian/Ubuntu install them with: apt-get install {EGL_PACKAGES}"
            ) from None
        log.info("OpenGL: GL_RENDERER=%s, GL_VERSION=%s", ctx.info.get("GL_RENDERER"), ctx.info.get("GL_VERSION"))
        _CTX = ctx
    return _CTX


@dataclass
class Mesh:
    """A triangle mesh in image coordinates.

    vertices: (V, 3) float, image pixels (x right, y down, z depth).
    faces:    (F, 3) int vertex indices.
    colors:   (V, 3) float in [0, 1] (albedo), or one (3,) colour for every vertex.
    pncc:     (V, 3) float template coordinates written to the PNCC output (zeros when None).
    instance: integer >= 1 (< 2**24) written to the instance buffer for every pixel of this mesh.
    normals:  (V, 3) vertex normals in image space; computed from the faces when None.
    specular: strength of the highlight (0 = matte).
    shininess: Blinn-Phong exponent.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    instance: int = 1
    pncc: np.ndarray | None = None
    normals: np.ndarray | None = None
    specular: float = 0.0
    shininess: float = 20.0


@dataclass
class Lights:
    """Directional lights in image space; a direction points from the surface TO the light.

    The camera looks along +z, so a light at the viewer is ``(0, 0, -1)``; ``(0, -1, -1)`` is above
    and in front (y is down).
    """

    ambient: tuple = (0.35, 0.35, 0.35)
    key_dir: tuple = (0.3, -0.5, -1.0)
    key_color: tuple = (0.75, 0.75, 0.75)
    fill_dir: tuple = (-0.6, 0.2, -0.6)
    fill_color: tuple = (0.0, 0.0, 0.0)
    gamma: float = 1.0  # output = shaded ** (1 / gamma); 1 = linear
    backface: float = 1.0  # colour factor of surfaces seen from behind (e.g. inside an open mouth)


ALL_OUTPUTS = ("pncc", "face", "facing")


@dataclass
class Frame:
    color: np.ndarray  # (H, W, 3) uint8, background where instance == 0
    pncc: np.ndarray | None  # (H, W, 3) float32 (None unless "pncc" was asked for)
    depth: np.ndarray  # (H, W) float32, inf where nothing was drawn
    instance: np.ndarray  # (H, W) int32, 0 = background
    face: np.ndarray | None  # (H, W) int32, triangle index within its mesh, -1 = background
    facing: np.ndarray | None  # (H, W) float32, z of the unit normal (< 0: faces the camera)
    inside: np.ndarray | None  # (H, W) bool, the triangle is seen from behind (its winding is clockwise on screen)
    extra: dict = field(default_factory=dict)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals. vertices (V, 3), faces (F, 3) -> (V, 3) float32."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    idx = f.ravel()
    n = np.stack([np.bincount(idx, weights=np.repeat(fn[:, c], 3), minlength=len(v)) for c in range(3)], axis=1)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(norm > 0, n / np.maximum(norm, 1e-30), np.array([0.0, 0.0, -1.0]))
    return n.astype(np.float32)


_VERT = """
#version 330
uniform vec2 u_size;      // width, height in pixels
uniform vec2 u_zrange;    // z near, z far (image units)
in vec3 in_pos;
in vec3 in_nrm;
in vec3 in_col;
in vec3 in_pncc;
in float in_inst;
in float in_spec;
out vec3 v_nrm;
out vec3 v_col;
out vec3 v_pncc;
out float v_z;
flat out float v_inst;
flat out float v_spec;
void main() {
    // image y down maps to NDC y up-to-down, so glReadPixels' bottom-up rows come out top-down
    float x = in_pos.x / u_size.x * 2.0 - 1.0;
    float y = in_pos.y / u_size.y * 2.0 - 1.0;
    float z = (in_pos.z - u_zrange.x) / (u_zrange.y - u_zrange.x) * 2.0 - 1.0;
    gl_Position = vec4(x, y, z, 1.0);
    v_nrm = in_nrm;
    v_col = in_col;
    v_pncc = in_pncc;
    v_z = in_pos.z;
    v_inst = in_inst;
    v_spec = in_spec;
}
"""

_FRAG = """
#version 330
uniform vec3 u_ambient;
uniform vec3 u_key_dir;
uniform vec3 u_key_col;
uniform vec3 u_fill_dir;
uniform vec3 u_fill_col;
uniform float u_inv_gamma;
uniform float u_shininess;
uniform float u_backface;
in vec3 v_nrm;
in vec3 v_col;
in vec3 v_pncc;
in float v_z;
flat in float v_inst;
flat in float v_spec;
layout(location = 0) out vec4 out_color;
layout(location = 1) out vec2 out_id;    // instance, depth
layout(location = 2) out vec4 out_pncc;  // pncc xyz, global triangle id
layout(location = 3) out vec2 out_side;  // normal z, 1 outside / 2 inside
void main() {
    vec3 n = normalize(v_nrm);
    float nz = n.z;
    if (n.z > 0.0) n = -n;                  // two-sided lighting: light the side we see
    vec3 view = vec3(0.0, 0.0, -1.0);
    vec3 kd = normalize(u_key_dir);
    vec3 fd = normalize(u_fill_dir);
    vec3 light = u_ambient + u_key_col * max(dot(n, kd), 0.0) + u_fill_col * max(dot(n, fd), 0.0);
    vec3 h = normalize(kd + view);
    float spec = v_spec * pow(max(dot(n, h), 0.0), u_shininess) * max(dot(n, kd), 0.0);
    vec3 c = v_col * light + spec * u_key_col;
    // image y runs down the NDC y axis, so a triangle wound counter-clockwise seen from outside in
    // the (right-handed) image frame is a GL back face: gl_FrontFacing means we see its inside
    bool inside = gl_FrontFacing;
    if (inside) c *= u_backface;
    c = pow(clamp(c, 0.0, 1.0), vec3(u_inv_gamma));
    out_color = vec4(c, 1.0);
    out_id = vec2(v_inst, v_z);
    out_pncc = vec4(v_pncc, float(gl_PrimitiveID));
    out_side = vec2(nz, inside ? 2.0 : 1.0);
}
"""


class Rasterizer:
    """Renders lists of :class:`Mesh` into :class:`Frame` s; reuses one GL context and programme.

    Framebuffers are cached per size. Not thread-safe (one GL context per process).
    """

    def __init__(self):
        self.ctx = gl_context()
        self.prog = self.ctx.program(vertex_shader=_VERT, fragment_shader=_FRAG)
        self._fbos: dict[tuple[int, int], tuple] = {}

    @property
    def renderer(self) -> str:
        return str(self.ctx.info.get("GL_RENDERER"))

    def _fbo(self, width: int, height: int):
        key = (width, height)
        if key not in self._fbos:
            ctx = self.ctx
            color = ctx.renderbuffer((width, height), 4, dtype="f1")
            ids = ctx.renderbuffer((width, height), 2, dtype="f4")
            pncc = ctx.renderbuffer((width, height), 4, dtype="f4")
            side = ctx.renderbuffer((width, height), 2, dtype="f4")
            depth = ctx.depth_renderbuffer((width, height))
            fbo = ctx.framebuffer(color_attachments=[color, ids, pncc, side], depth_attachment=depth)
            self._fbos[key] = (fbo, color, ids, pncc, side, depth)
        return self._fbos[key]

    def render(
        self,
        meshes: list[Mesh],
        width: int,
        height: int,
        lights: Lights | None = None,
        background: np.ndarray | None = None,
        outputs: tuple[str, ...] = ALL_OUTPUTS,
    ) -> Frame:
        """Rasterise ``meshes`` into a ``height x width`` frame.

        background: optional (H, W, 3) uint8 image shown where no mesh is drawn.
        outputs: which buffers to read back besides colour, instance and depth (always read):
        ``pncc`` and ``face`` (one read), ``facing`` (also gives ``inside``); those not read are None.
        """
        lights = lights or Lights()
        width, height = int(width), int(height)
        meshes = [m for m in meshes if len(m.faces)]
        for m in meshes:
            if not 1 <= int(m.instance) < 2**24:
                raise ValueError(f"mesh instance must be in 1..2**24-1 (0 is the background), got {m.instance}")
        arrays, indices, offsets, face_offsets = [], [], 0, [0]
        for m in meshes:
            v = np.asarray(m.vertices, dtype=np.float32)
            nv = len(v)
            n = vertex_normals(v, m.faces) if m.normals is None else np.asarray(m.normals, dtype=np.float32)
            col = np.broadcast_to(np.asarray(m.colors, dtype=np.float32), (nv, 3))
            pncc = np.zeros((nv, 3), np.float32) if m.pncc is None else np.asarray(m.pncc, dtype=np.float32)
            inst = np.full((nv, 1), float(m.instance), np.float32)
            spec = np.full((nv, 1), float(m.specular), np.float32)
            arrays.append(np.concatenate([v, n, col, pncc, inst, spec], axis=1))
            indices.append(np.asarray(m.faces, dtype=np.int64) + offsets)
            offsets += nv
            face_offsets.append(face_offsets[-1] + len(m.faces))
        fbo, *_ = self._fbo(width, height)
        fbo.use()
        ctx = self.ctx
        ctx.viewport = (0, 0, width, height)
        ctx.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        if meshes:
            data = np.ascontiguousarray(np.concatenate(arrays, axis=0), dtype=np.float32)
            idx = np.ascontiguousarray(np.concatenate(indices, axis=0).astype(np.uint32))
            z = data[:, 2]
            zmin, zmax = float(z.min()), float(z.max())
            pad = max(1.0, 0.01 * (zmax - zmin))
            p = self.prog
            p["u_size"].value = (float(width), float(height))
            p["u_zrange"].value = (zmin - pad, zmax + pad)
            p["u_ambient"].value = tuple(float(x) for x in lights.ambient)
            p["u_key_dir"].value = tuple(float(x) for x in lights.key_dir)
            p["u_key_col"].value = tuple(float(x) for x in lights.key_color)
            p["u_fill_dir"].value = tuple(float(x) for x in lights.fill_dir)
            p["u_fill_col"].value = tuple(float(x) for x in lights.fill_color)
            p["u_inv_gamma"].value = 1.0 / float(lights.gamma)
            p["u_shininess"].value = float(meshes[0].shininess)
            p["u_backface"].value = float(lights.backface)
            vbo = ctx.buffer(data.tobytes())
            ibo = ctx.buffer(idx.tobytes())
            vao = ctx.vertex_array(
                p,
                [(vbo, "3f 3f 3f 3f 1f 1f", "in_pos", "in_nrm", "in_col", "in_pncc", "in_inst", "in_spec")],
                index_buffer=ibo,
                index_element_size=4,
            )
            import moderngl

            ctx.enable(moderngl.DEPTH_TEST)
            ctx.disable(moderngl.CULL_FACE)
            ctx.depth_func = "<"
            vao.render(moderngl.TRIANGLES)
            vao.release()
            vbo.release()
            ibo.release()
        color = np.frombuffer(fbo.read(components=3, attachment=0, dtype="f1"), np.uint8).reshape(height, width, 3)
        ids = np.frombuffer(fbo.read(components=2, attachment=1, dtype="f4"), np.float32).reshape(height, width, 2)
        instance = np.rint(ids[..., 0]).astype(np.int32)
        drawn = instance > 0
        depth = np.where(drawn, ids[..., 1], np.inf).astype(np.float32)
        color = color.copy()
        if background is not None:
            bg = np.asarray(background, dtype=np.uint8)
            color[~drawn] = bg[~drawn]
        frame = Frame(color=color, pncc=None, depth=depth, instance=instance, face=None, facing=None, inside=None)
        if "pncc" in outputs or "face" in outputs:
            geo = np.frombuffer(fbo.read(components=4, attachment=2, dtype="f4"), np.float32).reshape(height, width, 4)
            frame.pncc = np.ascontiguousarray(geo[..., :3])
            # map the global triangle id back to (mesh, face within mesh)
            gid = np.rint(geo[..., 3]).astype(np.int64)
            fo = np.asarray(face_offsets, dtype=np.int64)
            mesh_of = np.clip(np.searchsorted(fo, gid, side="right") - 1, 0, max(len(meshes) - 1, 0))
            frame.face = np.where(drawn, gid - fo[mesh_of], -1).astype(np.int32)
            frame.extra["mesh_index"] = np.where(drawn, mesh_of, -1).astype(np.int32)
        if "facing" in outputs:
            side = np.frombuffer(fbo.read(components=2, attachment=3, dtype="f4"), np.float32).reshape(height, width, 2)
            frame.facing = np.ascontiguousarray(side[..., 0])
            frame.inside = side[..., 1] > 1.5
        return frame


_RASTERIZER: Rasterizer | None = None


def get_rasterizer() -> Rasterizer:
    """The process-wide :class:`Rasterizer` (one GL context, one programme)."""
    global _RASTERIZER
    if _RASTERIZER is None:
        _RASTERIZER = Rasterizer()
    return _RASTERIZER


# ---------------------------------------------------------------------------------------------
# small meshes used by the procedural scenes, the tests and the benchmark


def icosphere(subdivisions: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: vertices (V, 3) float64 on the unit sphere, faces (F, 3) int64 (outward CCW)."""
    t = (1.0 + 5**0.5) / 2.0
    v = [
        (-1, t, 0),
        (1, t, 0),
        (-1, -t, 0),
        (1, -t, 0),
        (0, -1, t),
        (0, 1, t),
        (0, -1, -t),
        (0, 1, -t),
        (t, 0, -1),
        (t, 0, 1),
        (-t, 0, -1),
        (-t, 0, 1),
    ]
    f = [
        (0, 11, 5),
        (0, 5, 1),
        (0, 1, 7),
        (0, 7, 10),
        (0, 10, 11),
        (1, 5, 9),
        (5, 11, 4),
        (11, 10, 2),
        (10, 7, 6),
        (7, 1, 8),
        (3, 9, 4),
        (3, 4, 2),
        (3, 2, 6),
        (3, 6, 8),
        (3, 8, 9),
        (4, 9, 5),
        (2, 4, 11),
        (6, 2, 10),
        (8, 6, 7),
        (9, 8, 1),
    ]
    verts = [np.array(p, dtype=np.float64) / np.linalg.norm(p) for p in v]
    faces = list(f)
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(a: int, b: int) -> int:
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts), np.array(faces, dtype=np.int64)


def box_mesh(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box from corner ``lo`` to ``hi``: 24 vertices (4 per side, so the vertex normals
    are the flat side normals), 12 triangles wound counter-clockwise seen from outside in a
    right-handed frame."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    c = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    sides = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    v = np.concatenate([c[list(q)] for q in sides])
    f = np.concatenate([[[4 * k, 4 * k + 1, 4 * k + 2], [4 * k, 4 * k + 2, 4 * k + 3]] for k in range(6)])
    return v, f.astype(np.int64)
