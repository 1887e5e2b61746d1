"""Head models: the procedural builder (anatomy, rig, components, determinism), the file format,
the chumpy-free FLAME loader, and the ``vggheads headmodel`` command."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from vggheads.cli import main
from vggheads.errors import InputError
from vggheads.geometry import FlameLayer, landmarks
from vggheads.headmodel import build_head_model, load_head_model, save_head_model


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The procedural model (seed 0), built once, and its file."""
    model = build_head_model(0)
    path = tmp_path_factory.mktemp("headmodel") / "head_model.npz"
    save_head_model(model, path)
    return model, path


@pytest.fixture(scope="module")
def model(built):
    return built[0]


def template_landmarks(model) -> np.ndarray:
    return model.landmarks_template()


# ---------------------------------------------------------------- determinism and format


def test_same_seed_same_bytes_other_seed_differs(built, tmp_path):
    _, first = built
    again = tmp_path / "again.npz"
    save_head_model(build_head_model(0), again)
    assert again.read_bytes() == first.read_bytes()
    other = build_head_model(1)
    ref = load_head_model(first)
    assert not np.allclose(other.shapedirs[:, :, 50:], ref.shapedirs[:, :, 50:])
    np.testing.assert_array_equal(other.v_template, ref.v_template)  # the seed drives only the random components


def test_save_load_roundtrip(built):
    model, path = built
    loaded = load_head_model(path)
    for key in (
        "v_template",
        "shapedirs",
        "posedirs",
        "J_regressor",
        "weights",
        "kintree_table",
        "faces",
        "lmk_faces",
        "lmk_bary",
    ):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(model, key))
    assert loaded.subsets.keys() == model.subsets.keys() and loaded.regions.keys() == model.regions.keys()
    for k in model.regions:
        np.testing.assert_array_equal(loaded.regions[k], model.regions[k])
    assert loaded.name == model.name


def test_flame_layout(model):
    V = model.n_vertices
    assert 4000 <= V <= 6000 and 9000 <= len(model.faces) <= 11000  # FLAME: 5,023 and 9,976
    assert model.shapedirs.shape == (V, 3, 400) and model.posedirs.shape == (V, 3, 36)
    assert model.J_regressor.shape == (5, V) and model.weights.shape == (V, 5)
    np.testing.assert_array_equal(model.kintree_table[0], [-1, 0, 1, 1, 1])
    assert model.shapedirs.dtype == np.float32 and model.faces.dtype == np.int64
    np.testing.assert_allclose(model.weights.sum(1), 1.0, atol=1e-6)
    assert model.weights.min() >= 0
    np.testing.assert_allclose(model.J_regressor.sum(1), 1.0, atol=1e-6)
    assert model.J_regressor.min() >= 0
    assert np.isin(np.arange(V), model.faces).all()  # no stray vertices


def test_triangles_face_outwards(model):
    v, f = model.v_template, model.faces
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    head = np.isin(f, model.subsets["head"]).all(1)
    outward = (n * (v[f].mean(1) - v[model.subsets["head"]].mean(0))).sum(1) > 0
    assert outward[head].mean() > 0.97
    for region, sign in (("eyes", 1), ("ears", 1), ("mouth_interior", -1)):  # the mouth is seen from inside
        tri = np.isin(f, model.regions[region]).all(1)
        volume = np.einsum("ij,ij->i", v[f[tri, 0]], np.cross(v[f[tri, 1]], v[f[tri, 2]])).sum()
        assert sign * volume > 0, region


def test_load_errors_name_the_problem(tmp_path, model):
    with pytest.raises(InputError, match="build-head-model"):
        load_head_model(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, v_template=model.v_template)
    with pytest.raises(InputError, match="shapedirs"):
        load_head_model(bad)


# ---------------------------------------------------------------- anatomy, frame and landmarks


def test_frame_and_size_are_flame_like(model):
    v = model.v_template
    lmk = template_landmarks(model)
    height = v[:, 1].max() - lmk[8, 1]  # crown to chin
    width = v[:, 0].max() - v[:, 0].min()
    assert 0.19 < height < 0.27 and 0.13 < width < 0.2  # metres
    assert lmk[30, 2] == lmk[:, 2].max()  # the nose tip is the most forward landmark: the face looks +z
    assert lmk[19, 1] > lmk[30, 1] > lmk[8, 1]  # brows above the nose above the chin: y is up
    assert lmk[45, 0] > 0 > lmk[36, 0]  # iBUG 45 is the subject's left eye, at +x


def test_landmarks_lie_on_the_mesh_surface(model):
    lmk = template_landmarks(model)
    tri = model.v_template[model.faces]  # (F, 3, 3)
    # distance from every landmark to the nearest triangle (points sampled densely on each triangle)
    uv = np.array([(a, b) for a in np.linspace(0, 1, 11) for b in np.linspace(0, 1, 11) if a + b <= 1])
    samples = (
        tri[:, 0, None]
        + uv[:, :1] * (tri[:, 1, None] - tri[:, 0, None])
        + uv[:, 1:] * (tri[:, 2, None] - tri[:, 0, None])
    )
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(samples.reshape(-1, 3)).query(lmk)
    edge = np.linalg.norm(tri[:, 1] - tri[:, 0], axis=1).max()
    assert dist.max() < edge / 10
    assert np.all(model.lmk_bary >= -1e-6) and np.allclose(model.lmk_bary.sum(1), 1, atol=1e-6)


def test_landmarks_are_in_ibug_order_and_mirror_symmetric(model):
    lmk = template_landmarks(model)
    # left-right pairs of iBUG: contour, brows, eyes, nose base, lips
    pairs = [(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)]
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (31, 35), (32, 34)]
    pairs += [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)]
    for i, j in pairs:
        assert lmk[i, 0] < 0 < lmk[j, 0], (i, j)
        np.testing.assert_allclose(lmk[i] * [-1, 1, 1], lmk[j], atol=1e-6, err_msg=f"{i} vs {j}")
    for i in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66):
        assert abs(lmk[i, 0]) < 1e-6, i  # on the midline
    assert lmk[8, 1] == lmk[:17, 1].min()  # the chin is the contour's lowest point
    assert np.all(np.diff(lmk[27:31, 1]) < 0)  # nose bridge runs down to the tip
    assert lmk[51, 1] > lmk[62, 1] >= lmk[66, 1] > lmk[57, 1]  # outer upper lip, inner lips, outer lower lip
    assert lmk[37, 1] > lmk[41, 1] and lmk[44, 1] > lmk[46, 1]  # upper lids above lower lids
    eye = model.J_regressor[3] @ model.v_template  # left eye joint
    assert np.linalg.norm(lmk[42:48].mean(0)[:2] - eye[:2]) < 0.004


# ---------------------------------------------------------------- rig


def test_joints_sit_where_they_should(model):
    J = model.J_regressor @ model.v_template
    root, neck, jaw, left_eye, right_eye = J
    lmk = template_landmarks(model)
    for idx, j in ((3, left_eye), (4, right_eye)):  # eye joints are the eyeballs' centres
        eyeball = model.v_template[model.weights[:, idx] == 1]
        assert len(eyeball) > 50
        radius = np.linalg.norm(eyeball - j, axis=1)
        assert radius.std() < 1e-4 and 0.009 < radius.mean() < 0.015
    assert left_eye[0] > 0 > right_eye[0]
    assert (
        abs(jaw[0]) < 1e-6 and lmk[48, 1] < jaw[1] < lmk[36, 1] and jaw[2] < lmk[48, 2] - 0.05
    )  # behind the mouth, between the ears
    assert root[1] < neck[1] < jaw[1]


def test_jaw_opens_the_mouth(model):
    layer = FlameLayer(model)
    jaw = torch.tensor([[0.0, 0.0, 0.0], [0.15, 0.0, 0.0], [0.3, 0.0, 0.0]])
    verts = layer(torch.zeros(3, 300), torch.zeros(3, 100), jaw)
    lmk = landmarks(verts, layer)
    gap = (lmk[:, 62] - lmk[:, 66]).norm(dim=1)  # inner upper lip to inner lower lip
    assert gap[0] < 0.002 and gap[1] > 0.008 and gap[2] > 2 * gap[1] - 0.004
    chin_drop = lmk[0, 8, 1] - lmk[2, 8, 1]
    assert chin_drop > 0.01
    # the skull and eyes do not move with the jaw
    top = model.v_template[:, 1] > lmk[0, 27, 1].item()
    assert (verts[2, top] - verts[0, top]).abs().max() < 1e-6


def test_skinning_weights_are_smooth_and_local(model):
    w = model.weights
    assert set(np.unique(w[:, 3])) <= {0.0, 1.0}  # eyeballs are rigid
    jaw = w[:, 2]
    assert jaw.max() == 1.0 and 300 < (jaw > 0).sum() < 0.4 * model.n_vertices
    e = np.concatenate([model.faces[:, [0, 1]], model.faces[:, [1, 2]], model.faces[:, [2, 0]]])
    jumps = np.abs(jaw[e[:, 0]] - jaw[e[:, 1]])
    assert np.mean(jumps > 0.5) < 0.01  # hard steps only along the lips


# ---------------------------------------------------------------- components


@pytest.mark.parametrize("block", [slice(0, 300), slice(300, 400)], ids=["shape", "expression"])
def test_components_are_orthogonal_with_decreasing_variance(model, block):
    D = model.shapedirs[:, :, block].reshape(-1, block.stop - block.start).astype(np.float64)
    G = D.T @ D
    norms = np.sqrt(np.diag(G))
    cos = G / np.outer(norms, norms)
    assert np.abs(cos - np.eye(len(norms))).max() < 1e-4
    assert np.all(np.diff(norms) < 0)


def test_components_are_smooth(model):
    f = model.faces
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])

    def roughness(field):  # mean change along an edge relative to the mean displacement
        return np.linalg.norm(field[e[:, 0]] - field[e[:, 1]], axis=1).mean() / np.linalg.norm(field, axis=1).mean()

    noise = roughness(np.random.default_rng(0).normal(size=model.v_template.shape))
    shape = [roughness(model.shapedirs[:, :, k]) for k in range(100)]
    expr = [roughness(model.shapedirs[:, :, 300 + k]) for k in range(50)]
    assert max(shape) < 0.4 * noise and np.mean(shape[:20]) < 0.15 * noise
    assert max(expr) < 0.6 * noise


def test_shape_keeps_eyes_rigid_and_mouth_closed(model):
    layer = FlameLayer(model)
    torch.manual_seed(0)
    verts = layer(2.0 * torch.randn(4, 300), torch.zeros(4, 100), torch.zeros(4, 3))
    for idx in (3, 4):
        eyeball = torch.from_numpy(np.flatnonzero(model.weights[:, idx] == 1))
        moved = verts[:, eyeball] - torch.from_numpy(model.v_template[eyeball]) - torch.tensor([0, 0, 0.05])
        assert (moved - moved[:, :1]).abs().max() < 1e-6  # a translation only
    lmk = landmarks(verts, layer)
    assert (lmk[:, 62] - lmk[:, 66]).norm(dim=1).max() < 0.002
    assert (verts - layer.v_template).abs().max() > 0.005  # shapes do differ


# ---------------------------------------------------------------- vertex sets


def test_subsets_and_regions(model):
    face, head = set(model.subsets["face"]), set(model.subsets["head"])
    assert face < head and 1500 < len(face) < len(head) < model.n_vertices
    eyes = set(model.regions["eyes"])
    assert not (head & eyes) and not (head & set(model.regions["ears"])) and not (head & set(model.regions["neck"]))
    inner = model.faces[model.lmk_faces[17:]].ravel()  # all but the contour
    assert set(inner) - eyes <= face
    v = model.v_template
    lmk = template_landmarks(model)
    scalp = v[model.regions["scalp"]]
    forehead = (np.abs(scalp[:, 0]) < lmk[45, 0]) & (scalp[:, 2] > lmk[0, 2])
    assert forehead.any() and scalp[forehead, 1].min() > lmk[19, 1]  # over the eyes, hair starts above the brows
    assert np.median(scalp[:, 1]) > lmk[19, 1]
    assert set(model.regions["iris"]) < eyes and set(model.regions["pupil"]) < set(model.regions["iris"])


# ---------------------------------------------------------------- LBS on the model file


def test_lbs_matches_smplx_on_the_model_file(built):
    from smplx.lbs import lbs as smplx_lbs

    from vggheads.geometry import lbs

    model = load_head_model(built[1])
    V = model.n_vertices
    t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32))
    torch.manual_seed(0)
    betas = torch.randn(4, 400)
    pose = 0.3 * torch.randn(4, 15)
    ref, _ = smplx_lbs(
        betas,
        pose,
        t(model.v_template),
        t(model.shapedirs),
        t(model.posedirs).reshape(V * 3, 36).T,
        t(model.J_regressor),
        torch.from_numpy(model.parents),
        t(model.weights),
    )
    ours, _ = lbs(
        betas,
        pose,
        t(model.v_template),
        t(model.shapedirs),
        t(model.posedirs),
        t(model.J_regressor),
        torch.from_numpy(model.parents),
        t(model.weights),
    )
    assert (ours - ref).abs().max() < 1e-5
    jaw_only = torch.zeros(4, 15)
    jaw_only[:, 6:9] = pose[:, 6:9]
    ref2, _ = smplx_lbs(
        betas,
        jaw_only,
        t(model.v_template),
        t(model.shapedirs),
        t(model.posedirs).reshape(V * 3, 36).T,
        t(model.J_regressor),
        torch.from_numpy(model.parents),
        t(model.weights),
    )
    fast = FlameLayer(model)(betas[:, :300], betas[:, 300:], pose[:, 6:9])
    assert (fast - ref2 - torch.tensor([0.0, 0.0, 0.05])).abs().max() < 1e-5


# ---------------------------------------------------------------- the FLAME loader

WRITE_FLAME = textwrap.dedent('''
    """Write a small model in FLAME's pickle layout: chumpy Ch objects and a scipy sparse J_regressor."""
    import pickle, sys, types
    import numpy as np
    import scipy.sparse

    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:                                   # what chumpy.ch.Ch pickles: its __dict__ minus caches
        def __init__(self, x):
            self.x = np.asarray(x)
            self._parents, self._cache = {}, {}
        def __getstate__(self):
            state = dict(self.__dict__)
            del state["_parents"], state["_cache"]
            return state

    Ch.__module__ = "chumpy.ch"
    ch.Ch = Ch
    chumpy.ch = ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch

    out = sys.argv[1]
    rng = np.random.default_rng(0)
    V, F = 40, 60
    J = rng.random((5, V)) * (rng.random((5, V)) < 0.3)
    J[:, 0] += 1e-3
    J /= J.sum(1, keepdims=True)
    w = rng.random((V, 5))
    w /= w.sum(1, keepdims=True)
    arrays = dict(v_template=rng.normal(0, 0.1, (V, 3)), shapedirs=rng.normal(0, 0.01, (V, 3, 400)),
                  posedirs=rng.normal(0, 0.01, (V, 3, 36)), J_regressor=J, weights=w,
                  kintree_table=np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32),
                  f=rng.integers(0, V, (F, 3)).astype(np.uint32))
    model = {"v_template": Ch(arrays["v_template"]), "shapedirs": Ch(arrays["shapedirs"]),
             "posedirs": Ch(arrays["posedirs"]), "J_regressor": scipy.sparse.csc_matrix(J),
             "weights": Ch(w), "kintree_table": arrays["kintree_table"], "f": arrays["f"],
             "J": Ch(J @ arrays["v_template"]), "bs_style": "lbs", "bs_type": "lrotmin"}
    with open(f"{out}/generic_model.pkl", "wb") as fh:
        pickle.dump(model, fh, protocol=2)
    static = {"lmk_face_idx": rng.integers(0, F, 51).astype(np.uint32), "lmk_b_coords": rng.dirichlet(np.ones(3), 51)}
    with open(f"{out}/flame_static_embedding.pkl", "wb") as fh:
        pickle.dump(static, fh, protocol=2)
    dynamic = {"lmk_face_idx": rng.integers(0, F, (79, 17)), "lmk_b_coords": rng.dirichlet(np.ones(3), (79, 17))}
    np.save(f"{out}/flame_dynamic_embedding.npy", dynamic, allow_pickle=True)
    np.savez(f"{out}/expected.npz", lmk_faces=np.concatenate([dynamic["lmk_face_idx"][0], static["lmk_face_idx"]]),
             lmk_bary=np.concatenate([dynamic["lmk_b_coords"][0], static["lmk_b_coords"]]), **arrays)
''')

READ_FLAME = textwrap.dedent("""
    import sys
    sys.modules["chumpy"] = None                # importing chumpy fails in this process
    import numpy as np
    from vggheads.headmodel import load_head_model

    d = sys.argv[1]
    m = load_head_model(f"{d}/generic_model.pkl")
    e = np.load(f"{d}/expected.npz")
    for key, ours in (("v_template", m.v_template), ("shapedirs", m.shapedirs), ("posedirs", m.posedirs),
                      ("J_regressor", m.J_regressor), ("weights", m.weights), ("f", m.faces),
                      ("lmk_faces", m.lmk_faces), ("lmk_bary", m.lmk_bary)):
        np.testing.assert_allclose(ours, e[key], rtol=1e-6, atol=1e-7, err_msg=key)
    np.testing.assert_array_equal(m.kintree_table[0], [-1, 0, 1, 1, 1])
    assert "chumpy" not in {k.split(".")[0] for k, v in sys.modules.items() if v is not None}
    assert set(m.subsets) >= {"face", "head"}
    print("ok", m.name)
""")


def test_flame_pickle_loads_without_chumpy(tmp_path):
    subprocess.run([sys.executable, "-c", WRITE_FLAME, str(tmp_path)], check=True)
    raw = (tmp_path / "generic_model.pkl").read_bytes()
    assert b"chumpy.ch" in raw and b"scipy.sparse" in raw  # the pickle really names those classes
    out = subprocess.run([sys.executable, "-c", READ_FLAME, str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok FLAME")


def test_flame_without_landmark_embedding_says_what_is_missing(tmp_path):
    subprocess.run([sys.executable, "-c", WRITE_FLAME, str(tmp_path)], check=True)
    (tmp_path / "flame_static_embedding.pkl").unlink()
    with pytest.raises(InputError, match="flame_static_embedding.pkl"):
        load_head_model(tmp_path / "generic_model.pkl")


# ---------------------------------------------------------------- the command


def test_cli_build_writes_the_file_atomically(tmp_path, monkeypatch, built):
    out = tmp_path / "models" / "head_model.npz"
    assert main(["build-head-model", "--out", str(out), "--seed", "0"]) == 0
    assert out.read_bytes() == built[1].read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["head_model.npz"]  # no temp files left
    # a write that dies half-way leaves the old file untouched and no partial file beside it
    old = out.read_bytes()
    calls = {"n": 0}
    real = np.lib.format.write_array

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", dying)
    with pytest.raises(OSError, match="disk full"):
        main(["build-head-model", "--out", str(out), "--seed", "1"])
    assert out.read_bytes() == old
    assert sorted(p.name for p in out.parent.iterdir()) == ["head_model.npz"]


def test_cli_build_reads_the_seed_from_params(tmp_path):
    import yaml

    params = yaml.safe_load(Path("params.yaml").read_text())
    params["headmodel"]["seed"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "m.npz"
    assert main(["build-head-model", "--out", str(out), "--params", str(tmp_path / "params.yaml")]) == 0
    assert load_head_model(out).name.endswith("(seed 1)")


def test_cli_show_draws_a_picture(tmp_path, built):
    from PIL import Image

    out = tmp_path / "head.png"
    assert main(["headmodel", "show", str(built[1]), "--out", str(out), "--size", "96"]) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[1] == 4 * 96 and (img < 200).any()  # something was drawn
