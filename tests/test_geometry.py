"""Geometry core: the 413-vector, rotations and pose angles, LBS against smplx, the canonical
layer, projection, landmarks and decode. Runs on a small random model in FLAME's layout (the
procedural model's own checks are in test_headmodel.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from vggheads.geometry import (
    CANONICAL_Z_OFFSET,
    FRONTAL,
    N_PARAMS,
    FlameLayer,
    FlameParams,
    angles_to_matrix,
    batch_rodrigues,
    decode,
    join_params,
    landmarks,
    lbs,
    matrix_to_angles,
    matrix_to_rot6d,
    project,
    rot6d_to_matrix,
    split_params,
)
from vggheads.headmodel import HeadModel, load_head_model, save_head_model


def random_model(V: int = 80, F: int = 120, seed: int = 0) -> HeadModel:
    """A random model in FLAME's layout: enough to test the maths, not a head."""
    rng = np.random.default_rng(seed)
    weights = rng.random((V, 5)) ** 3
    weights[rng.random(V) < 0.5, 2] = 0.0  # the jaw moves only some vertices
    J = rng.random((5, V))
    return HeadModel(
        v_template=rng.normal(0, 0.08, (V, 3)),
        shapedirs=rng.normal(0, 0.002, (V, 3, 400)),
        posedirs=rng.normal(0, 0.002, (V, 3, 36)),
        J_regressor=J / J.sum(1, keepdims=True),
        weights=weights / weights.sum(1, keepdims=True),
        kintree_table=np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
        faces=rng.integers(0, V, (F, 3)),
        lmk_faces=rng.integers(0, F, 68),
        lmk_bary=rng.dirichlet(np.ones(3), 68),
        subsets={"face": np.arange(10), "head": np.arange(40)},
        name="random",
    ).validate()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "random.npz"
    save_head_model(random_model(), path)
    return path


@pytest.fixture(scope="module")
def model(model_file):
    return load_head_model(model_file)


def random_rotations(n: int, seed: int = 0, max_yaw: float | None = None) -> np.ndarray:
    R = Rotation.random(n, random_state=seed).as_matrix()
    if max_yaw is not None:  # keep the convention's middle angle away from its +-90 singularity
        yaw, _, _ = matrix_to_angles(R)
        R = R[np.abs(yaw) < max_yaw]
    return R


# ---------------------------------------------------------------- the 413-value parameter vector


def test_split_join_roundtrip_torch_and_numpy():
    p = torch.randn(5, N_PARAMS)
    parts = split_params(p)
    assert parts.shape.shape == (5, 300) and parts.expression.shape == (5, 100)
    assert parts.jaw.shape == (5, 3) and parts.rot6d.shape == (5, 6)
    assert parts.translation.shape == (5, 3) and parts.scale.shape == (5, 1)
    torch.testing.assert_close(join_params(parts), p, rtol=0, atol=0)
    # the paper's order: shape 0:300, expression 300:400, jaw 400:403, rot6d 403:409, translation 409:412, scale 412
    torch.testing.assert_close(parts.jaw, p[:, 400:403])
    torch.testing.assert_close(parts.rot6d, p[:, 403:409])
    torch.testing.assert_close(parts.scale[:, 0], p[:, 412])
    q = np.random.default_rng(0).normal(size=(2, 3, N_PARAMS))
    np.testing.assert_array_equal(join_params(split_params(q)), q)


def test_join_params_builds_a_vector_from_parts():
    parts = FlameParams(
        shape=np.zeros(300),
        expression=np.ones(100),
        jaw=np.full(3, 2.0),
        rot6d=np.full(6, 3.0),
        translation=np.full(3, 4.0),
        scale=np.float64(5.0),
    )
    p = join_params(parts)
    assert p.shape == (413,)
    assert p[299] == 0 and p[300] == 1 and p[402] == 2 and p[403] == 3 and p[411] == 4 and p[412] == 5


def test_split_params_rejects_wrong_length():
    with pytest.raises(ValueError, match="413"):
        split_params(torch.zeros(2, 412))


# ---------------------------------------------------------------- rotations


def test_rot6d_follows_the_paper_formula():
    x = torch.randn(100, 6, dtype=torch.float64)
    a1, a2 = x[:, :3], x[:, 3:]
    b1 = a1 / a1.norm(dim=1, keepdim=True)
    b3 = torch.linalg.cross(b1, a2)
    b3 = b3 / b3.norm(dim=1, keepdim=True)
    b2 = -torch.linalg.cross(b1, b3)
    R = rot6d_to_matrix(x)
    torch.testing.assert_close(R, torch.stack([b1, b2, b3], dim=-1))
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(100, 3, 3))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100, dtype=torch.float64))


def test_rot6d_matrix_roundtrip():
    R = torch.from_numpy(random_rotations(200))
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(R)), R)
    x = torch.randn(200, 6, dtype=torch.float64)
    R2 = rot6d_to_matrix(x)
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(R2)), R2)


def test_core_numpy_rotations_agree_with_the_torch_ones():
    from vggheads.core import rotmat

    x = np.random.default_rng(4).normal(size=(500, 6))
    R = rot6d_to_matrix(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(rotmat.rot6d_to_matrix(x), R, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(rotmat.matrix_to_rot6d(R), matrix_to_rot6d(torch.from_numpy(R)).numpy())
    for got, want in zip(rotmat.matrix_to_angles(R), matrix_to_angles(R)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    frontal = rotmat.matrix_to_angles(np.asarray(FRONTAL)[None])
    np.testing.assert_allclose(np.concatenate(frontal), 0.0, atol=1e-12)


def test_angles_follow_the_paper_convention():
    R = random_rotations(300, seed=1, max_yaw=85)
    yaw, pitch, roll = matrix_to_angles(R)
    e = Rotation.from_matrix(np.transpose(R, (0, 2, 1))).as_euler("xyz", degrees=True)
    wrap = lambda a: (a + 180.0) % 360.0 - 180.0
    np.testing.assert_allclose(roll, wrap(e[:, 2]), atol=1e-7)
    np.testing.assert_allclose(pitch, wrap(e[:, 0] - 180.0), atol=1e-7)
    np.testing.assert_allclose(yaw, wrap(e[:, 1]), atol=1e-7)


def test_matrix_angles_roundtrip_both_ways():
    R = random_rotations(300, seed=2, max_yaw=85)
    np.testing.assert_allclose(angles_to_matrix(*matrix_to_angles(R)), R, atol=1e-9)
    rng = np.random.default_rng(3)
    yaw, pitch, roll = rng.uniform(-89, 89, 300), rng.uniform(-179, 179, 300), rng.uniform(-179, 179, 300)
    back = matrix_to_angles(angles_to_matrix(yaw, pitch, roll))
    for got, want in zip(back, (yaw, pitch, roll)):
        np.testing.assert_allclose(got, want, atol=1e-7)
    # torch in, torch out, batched
    t = [torch.from_numpy(a) for a in (yaw, pitch, roll)]
    for got, want in zip(matrix_to_angles(angles_to_matrix(*t)), t):
        torch.testing.assert_close(got, want)


def test_frontal_face_has_zero_angles():
    R = np.asarray(FRONTAL)
    np.testing.assert_array_equal(R, np.diag([1.0, -1.0, -1.0]))
    np.testing.assert_allclose(matrix_to_angles(R), (0.0, 0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(angles_to_matrix(0.0, 0.0, 0.0), R, atol=1e-12)
    # the same frontal face through a 6D vector
    six = matrix_to_rot6d(torch.tensor(R)[None])
    assert all(abs(float(a)) < 1e-9 for a in matrix_to_angles(rot6d_to_matrix(six)))


def test_yaw_turns_about_the_image_vertical():
    R = angles_to_matrix(30.0, 0.0, 0.0)
    nose_direction = R @ np.array([0.0, 0.0, 1.0])  # the face's forward axis in the image
    assert abs(nose_direction[1]) < 1e-12  # stays level
    assert abs(abs(nose_direction[0]) - np.sin(np.deg2rad(30))) < 1e-12


def test_batch_rodrigues_matches_smplx():
    from smplx.lbs import batch_rodrigues as smplx_rodrigues

    v = torch.randn(50, 3, dtype=torch.float64)
    v[0] = 0.0
    torch.testing.assert_close(batch_rodrigues(v), smplx_rodrigues(v))
    R = batch_rodrigues(v[1:])
    np.testing.assert_allclose(R.numpy(), Rotation.from_rotvec(v[1:].numpy()).as_matrix(), atol=1e-7)


# ---------------------------------------------------------------- LBS


def _smplx_lbs(model: HeadModel, betas, pose, dtype):
    from smplx.lbs import lbs as smplx_lbs

    V = model.n_vertices
    t = lambda a: torch.from_numpy(np.asarray(a)).to(dtype)
    verts, joints = smplx_lbs(
        betas,
        pose,
        t(model.v_template),
        t(model.shapedirs),
        t(model.posedirs).reshape(V * 3, -1).T,
        t(model.J_regressor),
        torch.from_numpy(model.parents),
        t(model.weights),
    )
    return verts, joints


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lbs_matches_smplx_on_the_same_model_file(model, dtype):
    torch.manual_seed(0)
    betas = torch.randn(6, 400, dtype=dtype)
    pose = 0.4 * torch.randn(6, 15, dtype=dtype)  # global, neck, jaw and eyes all non-zero
    ref_v, ref_j = _smplx_lbs(model, betas, pose, dtype)
    t = lambda a: torch.from_numpy(np.asarray(a)).to(dtype)
    v, j = lbs(
        betas,
        pose,
        t(model.v_template),
        t(model.shapedirs),
        t(model.posedirs),
        t(model.J_regressor),
        torch.from_numpy(model.parents),
        t(model.weights),
    )
    assert (v - ref_v).abs().max() < 1e-5
    assert (j - ref_j).abs().max() < 1e-5
    assert (ref_v - t(model.v_template)).abs().max() > 1e-2  # the pose did something


def test_layer_equals_the_papers_full_lbs(model):
    layer = FlameLayer(model)
    torch.manual_seed(1)
    shape, expression, jaw = torch.randn(5, 300), torch.randn(5, 100), 0.3 * torch.randn(5, 3)
    pose = torch.zeros(5, 15)
    pose[:, 6:9] = jaw  # [0 global, 0 neck, jaw, 0 eyes]
    ref, _ = _smplx_lbs(model, torch.cat([shape, expression], 1), pose, torch.float32)
    out = layer(shape, expression, jaw)
    assert (out - (ref + torch.tensor([0.0, 0.0, 0.05]))).abs().max() < 1e-5
    torch.testing.assert_close(layer.posed(shape, expression, pose), out, atol=1e-5, rtol=0)


def test_layer_zero_parameters_give_the_template(model):
    layer = FlameLayer(model)
    out = layer(torch.zeros(2, 300), torch.zeros(2, 100), torch.zeros(2, 3))
    expected = torch.from_numpy(model.v_template) + torch.tensor([0.0, 0.0, CANONICAL_Z_OFFSET])
    torch.testing.assert_close(out, expected.expand(2, -1, -1), atol=1e-7, rtol=0)


def test_layer_active_components_equal_zero_padding(model):
    """The paper's L model predicts 128 shape / 64 expression values and pads the rest with zeros."""
    torch.manual_seed(2)
    shape, expression, jaw = torch.randn(3, 300), torch.randn(3, 100), 0.2 * torch.randn(3, 3)
    padded_shape, padded_expr = shape.clone(), expression.clone()
    padded_shape[:, 128:] = 0
    padded_expr[:, 64:] = 0
    full = FlameLayer(model)(padded_shape, padded_expr, jaw)
    small = FlameLayer(model, n_shape=128, n_expr=64)
    torch.testing.assert_close(small(shape, expression, jaw), full, atol=1e-6, rtol=0)
    torch.testing.assert_close(small(shape[:, :128], expression[:, :64], jaw), full, atol=1e-6, rtol=0)


def test_layer_gradients_reach_every_input(model):
    layer = FlameLayer(model, n_shape=10, n_expr=10)
    shape = torch.zeros(2, 10, requires_grad=True)
    expression = torch.zeros(2, 10, requires_grad=True)
    jaw = torch.full((2, 3), 0.1, requires_grad=True)
    with torch.enable_grad():  # other code in the test process may have switched autograd off globally
        layer(shape, expression, jaw).square().sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (shape, expression, jaw))


# ---------------------------------------------------------------- projection, landmarks, decode


def test_project_scales_rotates_and_translates():
    v = torch.tensor([[[0.0, 0.1, 0.0], [0.1, 0.0, 0.2]]])
    R = torch.tensor(FRONTAL)[None]
    out = project(v, R, torch.tensor([[100.0, 50.0, 7.0]]), torch.tensor([1000.0]))
    # y up in the model becomes y down in the image; z towards the viewer becomes smaller depth
    torch.testing.assert_close(out, torch.tensor([[[100.0, -50.0, 7.0], [200.0, 50.0, -193.0]]]))


def test_landmarks_are_barycentric_points_of_their_triangles(model):
    v = torch.randn(2, model.n_vertices, 3)
    got = landmarks(v, model)
    corners = v[:, torch.from_numpy(model.faces[model.lmk_faces])]  # (2, 68, 3, 3)
    want = (corners * torch.from_numpy(model.lmk_bary)[None, :, :, None]).sum(2)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(landmarks(v, (model.lmk_faces, model.lmk_bary, model.faces)), want)
    torch.testing.assert_close(landmarks(v, FlameLayer(model)), want)
    with pytest.raises(ValueError, match="faces"):
        landmarks(v, (model.lmk_faces, model.lmk_bary))


def test_decode_a_parameter_vector(model):
    layer = FlameLayer(model)
    torch.manual_seed(3)
    B = 4
    R = angles_to_matrix(
        torch.tensor([10.0, -20.0, 0.0, 45.0]),
        torch.tensor([5.0, 0.0, -15.0, 30.0]),
        torch.tensor([0.0, 12.0, -8.0, 3.0]),
    ).float()
    parts = FlameParams(
        shape=torch.randn(B, 300),
        expression=torch.randn(B, 100),
        jaw=0.2 * torch.rand(B, 3),
        rot6d=matrix_to_rot6d(R),
        translation=torch.rand(B, 3) * 500,
        scale=torch.rand(B, 1) * 900 + 100,
    )
    out = decode(join_params(parts), layer)
    torch.testing.assert_close(out.R, R, atol=1e-6, rtol=0)
    canonical = layer(parts.shape, parts.expression, parts.jaw)
    torch.testing.assert_close(out.vertices_canonical, canonical)
    torch.testing.assert_close(
        out.vertices_image, project(canonical, R, parts.translation, parts.scale[:, 0]), atol=1e-3, rtol=1e-5
    )
    torch.testing.assert_close(out.landmarks_image, landmarks(out.vertices_image, model))
    torch.testing.assert_close(out.yaw, torch.tensor([10.0, -20.0, 0.0, 45.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.pitch, torch.tensor([5.0, 0.0, -15.0, 30.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.roll, torch.tensor([0.0, 12.0, -8.0, 3.0]), atol=1e-3, rtol=0)
