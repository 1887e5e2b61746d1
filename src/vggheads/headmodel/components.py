"""The procedural head model's components: step 4 of :mod:`vggheads.headmodel.builder`.

Shape = a few anatomical modes (size, width, face length, nose, jaw, chin...) then random smooth
fields, coarse to fine, mostly left-right symmetric; expression = semantic face modes (smile,
lips part, brow raise...) then random smooth fields masked to the face. Each set is
orthonormalised (QR, as V*3 vectors, in that order) and scaled by a decreasing standard
deviation. Pose correctives are small local fields per joint. The seed (``rng``) drives only the
random fields.
"""

from __future__ import annotations

import numpy as np

from .rig import JAW, LEFT_EYE, NECK, RIGHT_EYE, _smoothstep
from .surface import PARTS, A, Mesh, _mirror

N_SHAPE_MODES = 300
N_EXPR_MODES = 100
SHAPE_STD_FIRST = 0.003  # rms displacement per coordinate (metres) of one unit of the first shape component
SHAPE_STD_DECAY = 0.8  # std of component k is first * (k + 1) ** -decay
EXPR_STD_FIRST = 0.0006  # expressions are local: 0.6 mm rms over the head is ~7 mm at the mouth corners
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


N_SHAPE_HARMONICS = 200  # scalar harmonics of the head surface behind the random shape modes
N_EXPR_HARMONICS = 120  # ... of the face patch behind the random expression modes
HARMONIC_WINDOW = 12  # a random mode mixes this many neighbouring (in frequency) vector harmonics
SHAPE_SYMMETRIC = 0.85  # share of random shape modes made left-right symmetric
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
        cot = np.clip((e1 * e2).sum(1) / np.maximum(cross, 1e-15), 0.0, 1e3)  # angle at a, opposite edge b-c
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
    order = np.argsort(vals)[1:]  # drop the constant
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
        yield basis[:, :, start : start + HARMONIC_WINDOW] @ w


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
    X = np.stack([f.reshape(-1) for f in fields], axis=1)  # (3V, K)
    Q, R = np.linalg.qr(X)
    Q *= np.sign(np.diag(R))[None, :]  # keep each mode's own direction
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
        lambda p: p - centre,  # size (depth = size - width - height)
        lambda p: _vec(p[:, 0], zeros(p), zeros(p)),  # width
        lambda p: _vec(zeros(p), p[:, 1] - centre[1], zeros(p)),  # height
        lambda p: _vec(zeros(p), (p[:, 1] - 0.02) * _smoothstep((0.02 - p[:, 1]) / 0.04), zeros(p)),  # face length
        lambda p: _vec(p[:, 0] * lower_face(p), zeros(p), zeros(p)),  # jaw width
        lambda p: (p - np.asarray(A.nose_root)) * _gauss(p, A.nose_tip, 0.018)[:, None],  # nose size
        lambda p: _vec(p[:, 0] * _gauss(p, A.nose_tip, 0.016), zeros(p), zeros(p)),  # nose width
        lambda p: _vec(zeros(p), -0.3 * _gauss(p, A.chin_c, 0.02), _gauss(p, A.chin_c, 0.02)),  # chin
        lambda p: _vec(
            np.sign(p[:, 0]) * _both(p, A.cheek_c, 0.02), zeros(p), 0.5 * _both(p, A.cheek_c, 0.02)
        ),  # cheekbones
        lambda p: _vec(np.sign(p[:, 0]) * _both(p, A.eye_c, 0.016), zeros(p), zeros(p)),  # eye spacing
        lambda p: _vec(zeros(p), zeros(p), _both(p, A.brow_mid, 0.018)),  # brow ridge
        lambda p: _vec(
            zeros(p), zeros(p), (p[:, 1] - 0.03) * _smoothstep((p[:, 1] - 0.03) / 0.05) * _smoothstep(p[:, 2] / 0.05)
        ),  # forehead slope
        lambda p: _vec(
            zeros(p),
            0.2 * np.sign(p[:, 1] - A.mouth_y) * _gauss(p, (0, A.mouth_y, A.lip_front_z), 0.014),
            _gauss(p, (0, A.mouth_y, A.lip_front_z), 0.014),
        ),  # lip fullness
        lambda p: _vec(zeros(p), zeros(p), -_smoothstep((-0.03 - p[:, 2]) / 0.06)),  # skull length
        lambda p: _vec(zeros(p), _smoothstep((p[:, 1] - 0.05) / 0.06), zeros(p)),  # skull height
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
    return (
        _smoothstep((p[:, 2] - 0.01) / 0.04)
        * _smoothstep((p[:, 1] + 0.115) / 0.02)
        * (1.0 - _smoothstep((p[:, 1] - 0.06) / 0.025))
    )


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
        lambda p: (
            _vec(0.5 * sx(p), 1.0, -0.4) * _both(p, corner, 0.012)[:, None]
            + _vec(zeros(p), 0.4, 0.2) * _both(p, A.cheek_c, 0.018)[:, None]
        ),  # smile
        lambda p: _vec(zeros(p), lip_side, zeros(p)) * _gauss(p, mouth, 0.016)[:, None],  # lips part
        lambda p: _vec(zeros(p), 1.0, 0.1) * _both(p, A.brow_mid, 0.018)[:, None],  # brows up
        lambda p: _vec(-0.6 * sx(p), -1.0, 0.2) * _both(p, A.brow_in, 0.011)[:, None],  # frown
        lambda p: _vec(-0.8 * p[:, 0] / A.mouth_half_width, zeros(p), 1.0) * _gauss(p, mouth, 0.015)[:, None],  # pucker
        lambda p: _vec(sx(p), -0.5, -0.3) * _both(p, corner, 0.012)[:, None],  # mouth stretch
        lambda p: _vec(zeros(p), -1.0, 0.0) * _both(p, corner, 0.011)[:, None],  # corners down
        lambda p: (
            _vec(0.8 * sx(p), -0.2, 0.4) * _both(p, A.cheek_c + np.array([0, -0.03, 0.01]), 0.016)[:, None]
        ),  # cheeks puff
        lambda p: _vec(zeros(p), 1.0, 0.3) * _both(p, A.ala + np.array([0, 0.01, 0]), 0.009)[:, None],  # nose wrinkle
        lambda p: (
            _vec(zeros(p), np.clip(lip_side, 0, 1), 0.3) * _gauss(p, mouth + [0, 0.008, 0], 0.012)[:, None]
        ),  # upper lip up
        lambda p: (
            _vec(zeros(p), -np.clip(-lip_side, 0, 1), 0.2) * _gauss(p, mouth - [0, 0.01, 0], 0.012)[:, None]
        ),  # lower lip down
        lambda p: _vec(zeros(p), -np.sign(p[:, 1] - lids[1]), zeros(p)) * _both(p, lids, 0.009)[:, None],  # squint
        lambda p: np.array([0.5, 1.0, -0.4]) * _gauss(p, corner, 0.012)[:, None],  # half smile
        lambda p: _vec(zeros(p), zeros(p), 1.0) * _gauss(p, A.chin_c, 0.025)[:, None],  # chin forward
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
    P[:, :, 9 * (JAW - 1) + 7] += (
        0.012 * inward * hollow[:, None] + 0.01 * np.array([0.0, -0.3, 1.0]) * under_chin[:, None]
    )
    return P
