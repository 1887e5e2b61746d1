"""Backend ``procedural``: exact truth (landmarks on the face, tight boxes, decoded = drawn), seeds,
occlusion, head placement from keypoints, and a shard through the render stage."""

from __future__ import annotations

import numpy as np
import pytest

from vggheads.render.procedural import BODY_INSTANCE, ProceduralRenderer

W = H = 256


@pytest.fixture(scope="module")
def renderer(head_model):
    return ProceduralRenderer(head_model, {"supersample": 2, "noise_std": 0.0})


def _frontal_keypoints(cx: float, cy: float, size: float, yaw_sign: float = 0.0) -> np.ndarray:
    """COCO-17 keypoints of an upright person whose eyes are ``size`` px apart, shoulders below."""
    kp = np.zeros((17, 3))
    e = size / 2
    shift = yaw_sign * 0.6 * e
    kp[0] = (cx + shift, cy + 0.9 * e, 0.9)  # nose
    kp[1] = (cx + e + shift * 0.7, cy, 0.9)  # left eye (image right)
    kp[2] = (cx - e + shift * 0.7, cy, 0.9)  # right eye
    kp[3] = (cx + 2.3 * e, cy + 0.5 * e, 0.9 if yaw_sign <= 0.5 else 0.0)  # left ear
    kp[4] = (cx - 2.3 * e, cy + 0.5 * e, 0.9 if yaw_sign >= -0.5 else 0.0)  # right ear
    kp[5] = (cx + 5 * e, cy + 7 * e, 0.9)  # shoulders
    kp[6] = (cx - 5 * e, cy + 7 * e, 0.9)
    kp[11] = (cx + 3 * e, cy + 16 * e, 0.9)  # hips
    kp[12] = (cx - 3 * e, cy + 16 * e, 0.9)
    return kp


def _scene(seed: int = 3, n: int = 3):
    from vggheads.poses.procedural import sample_scene

    persons = sample_scene(n, W, H, np.random.default_rng(seed))
    return [(i, p.keypoints) for i, p in enumerate(persons)]


def test_landmarks_fall_on_their_own_face_and_the_nose_tip_on_the_nose(renderer, head_model):
    # big heads (about 4 px per cm, 8 supersampled), one frontal and one turned, so a pixel is much
    # smaller than the nose; template shape and expression, so that 1 cm in PNCC is 1 cm on the face
    persons = [(0, _frontal_keypoints(75, 80, 30)), (1, _frontal_keypoints(185, 90, 28, yaw_sign=0.6))]
    template = ProceduralRenderer(head_model, {"supersample": 2, "noise_std": 0.0, "shape_std": 0.0, "expr_std": 0.0})
    result = template.render(persons, W, H, seed=11, full_frame=True)
    assert len(result.heads) == 2
    k = result.supersample
    nose_template = head_model.landmarks_template()[30]
    checked = 0
    assert max(int((h.landmarks[:, 2] > 0.5).sum()) for h in result.heads) >= 20
    for h in result.heads:
        lm = h.landmarks
        vis = lm[:, 2] > 0.5
        if not vis.any():
            continue
        x = np.floor(lm[:, 0] * k).astype(int)
        y = np.floor(lm[:, 1] * k).astype(int)
        inst = result.frame.instance[y[vis], x[vis]]
        head_id = np.bincount(inst).argmax()
        assert 1 <= head_id < BODY_INSTANCE
        assert np.all(inst == head_id), "every visible landmark lies on a pixel of its own head"
        if vis[30]:
            # PNCC = template coordinates: the nose-tip pixel shows the template's nose tip (to 3 mm,
            # less than half a supersampled pixel's worth on the face)
            assert np.linalg.norm(result.frame.pncc[y[30], x[30]] - nose_template) < 0.003
            assert head_model.regions.get("nose") is None or np.any(
                np.linalg.norm(
                    head_model.v_template[head_model.regions["nose"]] - result.frame.pncc[y[30], x[30]], axis=1
                )
                < 0.005
            ), "and that pixel is on the nose region"
            checked += 1
    assert checked == 2
    # in a random scene with random shapes too, every visible landmark lies on its own head
    result = renderer.render(_scene(), W, H, seed=12, full_frame=True)
    for h in result.heads:
        vis = h.landmarks[:, 2] > 0.5
        x = np.floor(h.landmarks[vis, 0] * k).astype(int)
        y = np.floor(h.landmarks[vis, 1] * k).astype(int)
        assert np.all(result.frame.instance[y, x] == h.instance)


def test_boxes_are_the_tight_box_of_each_heads_visible_pixels(renderer):
    result = renderer.render(_scene(seed=5, n=4), W, H, seed=2, full_frame=True)
    k = result.supersample
    for h, head_id in [(h, h.instance) for h in result.heads]:
        mask = result.frame.instance == head_id
        ys, xs = np.nonzero(mask)
        box_k = np.rint(h.box * k).astype(int)
        # every visible pixel of the head is inside the box, and the box touches the pixels on all four sides
        assert xs.min() == box_k[0] and ys.min() == box_k[1]
        assert xs.max() + 1 == box_k[2] and ys.max() + 1 == box_k[3]
        assert mask.sum() == h.visible_pixels
        assert 0 < h.visible_fraction <= 1.0
        assert 0 <= h.box[0] < h.box[2] <= W and 0 <= h.box[1] < h.box[3] <= H


def test_the_413_vector_decodes_to_exactly_the_drawn_head(renderer, head_model):
    import torch

    from vggheads.geometry import FlameLayer, decode

    result = renderer.render(_scene(seed=8, n=2), W, H, seed=4, full_frame=True)
    params = torch.tensor(np.stack([h.params for h in result.heads]))
    assert params.dtype == torch.float32 and params.shape[1] == 413
    dec = decode(params, FlameLayer(head_model))
    k = result.supersample
    for i, (h, head_id) in enumerate([(h, h.instance) for h in result.heads]):
        v = dec.vertices_image[i].numpy().astype(np.float64)
        assert np.allclose(v, result.vertices[i], atol=1e-4)
        assert np.allclose(dec.landmarks_image[i, :, :2].numpy(), h.landmarks[:, :2], atol=1e-4)
        assert np.isclose(float(dec.yaw[i]), h.yaw, atol=1e-3)
        # the head mesh that was drawn is the decoded one, and the depth written on its pixels is the
        # decoded surface's depth at the pixel centres
        mesh_index = result.frame.extra["mesh_index"]
        drawn = [
            j
            for j, m in enumerate(result.meshes)
            if m.instance == head_id and m.faces.shape[0] == len(renderer.assets.head_faces)
        ]
        assert len(drawn) == 1
        assert np.array_equal(result.meshes[drawn[0]].vertices, result.vertices[i] * k)
        rows, cols = np.nonzero((result.frame.instance == head_id) & (mesh_index == drawn[0]))
        sel = np.linspace(0, len(rows) - 1, 50).astype(int)
        faces = head_model.faces[renderer.assets.head_faces][result.frame.face[rows[sel], cols[sel]]]
        tri = v[faces] * k  # (n, 3, 3) supersampled pixels
        p = np.stack([cols[sel] + 0.5, rows[sel] + 0.5], -1)
        a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
        den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
        l1 = ((b[:, 1] - c[:, 1]) * (p[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (p[:, 1] - c[:, 1])) / den
        l2 = ((c[:, 1] - a[:, 1]) * (p[:, 0] - c[:, 0]) + (a[:, 0] - c[:, 0]) * (p[:, 1] - c[:, 1])) / den
        # signed distance of the pixel centre to each edge (GL snaps vertices to 1/256 px: allow 1/50 px)
        lam = np.stack([l1, l2, 1 - l1 - l2], -1)
        opposite = np.stack(
            [np.linalg.norm(b - c, axis=1), np.linalg.norm(c - a, axis=1), np.linalg.norm(a - b, axis=1)], -1
        )
        assert np.all(lam * np.abs(den)[:, None] / opposite > -0.02), "the pixel lies in its triangle"
        z = l1 * tri[:, 0, 2] + l2 * tri[:, 1, 2] + (1 - l1 - l2) * tri[:, 2, 2]
        assert np.allclose(result.frame.depth[rows[sel], cols[sel]], z, atol=0.05 * k)


def test_same_seed_same_bytes_and_another_seed_differs(renderer):
    scene = _scene(seed=1, n=2)
    a = renderer.render(scene, W, H, seed=7)
    b = renderer.render(scene, W, H, seed=7)
    c = renderer.render(scene, W, H, seed=8)
    assert a.image.tobytes() == b.image.tobytes()
    assert [h.params.tobytes() for h in a.heads] == [h.params.tobytes() for h in b.heads]
    assert a.image.tobytes() != c.image.tobytes()
    assert not np.array_equal(a.heads[0].params[:300], c.heads[0].params[:300])


def test_a_head_behind_a_bigger_one_loses_its_hidden_landmarks(renderer):
    near = _frontal_keypoints(128, 100, 30)  # bigger head: nearer
    far = _frontal_keypoints(150, 100, 18)  # smaller, half behind the near face
    result = renderer.render([(0, near), (1, far)], W, H, seed=5, full_frame=True)
    k = result.supersample
    heads = {h.person: h for h in result.heads}
    assert 0 in heads and heads[0].visible_fraction > 0.95
    assert heads[0].params[412] > heads.get(1, heads[0]).params[412] * 0.99
    if 1 in heads:  # partly visible: hidden landmarks marked
        lm = heads[1].landmarks
        x, y = (np.floor(lm[:, :2] * k).astype(int)).T
        shown = result.frame.instance[np.clip(y, 0, H * k - 1), np.clip(x, 0, W * k - 1)]
        covered = shown == heads[0].instance
        assert covered.sum() >= 5
        assert np.all(lm[covered, 2] == 0)
        assert np.any(lm[:, 2] == 1)
        assert heads[1].visible_fraction < 0.9
    # the same far head hidden entirely: dropped and counted
    hidden = renderer.render(
        [(0, _frontal_keypoints(128, 100, 34)), (1, _frontal_keypoints(128, 100, 12))], W, H, seed=5
    )
    assert [h.person for h in hidden.heads] == [0]
    assert hidden.counts["occluded"] == 1


def test_a_head_outside_the_canvas_is_dropped_and_counted(renderer):
    result = renderer.render(
        [(0, _frontal_keypoints(128, 100, 24)), (1, _frontal_keypoints(-300, 100, 24))], W, H, seed=1, full_frame=True
    )
    assert [h.person for h in result.heads] == [0]
    assert result.counts["outside"] == 1 and result.counts["persons"] == 2


@pytest.mark.parametrize("yaw", [-60.0, -25.0, 0.0, 30.0, 70.0])
def test_the_head_pose_is_recovered_from_projected_face_keypoints(head_model, yaw):
    from vggheads.geometry import matrix_to_angles
    from vggheads.render.placement import anchors_from_mesh, fit_head, head_rotation
    from vggheads.render.procedural import ProceduralRenderer

    r = ProceduralRenderer.__new__(ProceduralRenderer)  # only the anchor helper is needed
    v = head_model.v_template.astype(np.float64) + [0, 0, 0.05]
    lm = head_model.landmarks_template().astype(np.float64) + [0, 0, 0.05]
    ears = [head_model.regions.get("ears", np.zeros(0, int))]
    anchors = anchors_from_mesh(
        v, lm, *(np.array([e for e in ears[0] if v[e, 0] > 0]), np.array([e for e in ears[0] if v[e, 0] < 0]))
    )
    R = head_rotation(np.radians(yaw), np.radians(8.0), np.radians(-5.0))
    s, t = 600.0, np.array([300.0, 200.0])
    p = s * (anchors.points @ R.T)[:, :2] + t
    facing = -(anchors.normals @ R.T)[:, 2]
    kp = np.zeros((17, 3))
    kp[:5, :2] = p
    kp[:5, 2] = np.where(facing > -0.2, 0.9, 0.0)
    fit = fit_head(kp, anchors)
    got = matrix_to_angles(fit.R)
    want = matrix_to_angles(R)
    assert abs(float(got[0]) - float(want[0])) < 10.0
    assert abs(fit.scale / s - 1) < 0.1
    del r


def test_a_shard_through_the_render_stage(tmp_path, params, head_model):
    import pyarrow.parquet as pq

    from vggheads.headmodel import save_head_model
    from vggheads.poses.procedural import sample_scene
    from vggheads.schemas import from_rows, read_table, write_table
    from vggheads.stages.render import RenderJob, render

    params = {**params, "tracking": {**params["tracking"], "enabled": False}}
    params["render"] = {
        **params["render"],
        "backend": "procedural",
        "procedural": {**params["render"]["procedural"], "supersample": 1},
    }
    captions, poses = [], []
    for j in range(3):
        sid = f"00000-{j:06d}"
        captions.append(
            {
                "sample_id": sid,
                "shard": "00000",
                "source_file": "x",
                "source_row": j,
                "url": "",
                "caption": "people",
                "prompt": "people",
                "negative_prompt": "bad",
                "seed": 100 + j,
            }
        )
        for p, person in enumerate(sample_scene(2 if j else 0, 160, 128, np.random.default_rng(j))):
            poses.append(
                {
                    "sample_id": sid,
                    "person": p,
                    "width": 160,
                    "height": 128,
                    "keypoints": person.keypoints,
                    "box": person.box,
                    "condition_image": f"{sid}.png",
                    "backend": "procedural",
                }
            )
    write_table(from_rows("captions", captions), tmp_path / "captions.parquet", "captions")
    write_table(from_rows("poses", poses), tmp_path / "poses.parquet", "poses")
    save_head_model(head_model, tmp_path / "head.npz")
    out = tmp_path / "render"
    stats = render(
        params,
        RenderJob(
            shard="00000",
            captions=tmp_path / "captions.parquet",
            poses=tmp_path / "poses.parquet",
            conditions=tmp_path / "cond",
            head_model=tmp_path / "head.npz",
            out_images=out,
            out_table=tmp_path / "render.parquet",
            out_heads=tmp_path / "render.heads.parquet",
            out_stats=tmp_path / "render.stats.json",
            work_dir=tmp_path / "work",
        ),
    )
    table = read_table(tmp_path / "render.parquet", "render").to_pylist()
    heads = read_table(tmp_path / "render.heads.parquet", "render_heads").to_pylist()
    assert [r["sample_id"] for r in table] == [c["sample_id"] for c in captions]
    assert all((out / r["image"]).exists() and r["backend"] == "procedural" for r in table)
    assert {r["width"] for r in table} == {160} or table[0]["width"] == params["poses"]["width"]
    assert stats["images"] == 3 and stats["heads"] == len(heads) > 0
    assert {h["sample_id"] for h in heads} <= {c["sample_id"] for c in captions[1:]}
    assert all(len(h["flame_params"]) == 413 and len(h["landmarks"]) == 204 for h in heads)
    assert pq.read_metadata(tmp_path / "render.heads.parquet").num_rows == len(heads)


def test_a_model_without_colour_regions_renders_from_its_landmarks(head_model):
    """A FLAME file has no region masks: lips, eyes, brows, scalp and neck come from the landmarks."""
    import dataclasses

    bare = dataclasses.replace(head_model, regions={})
    r = ProceduralRenderer(bare, {"supersample": 1, "hair_p": 1.0})
    assets = r.assets
    assert assets.skin_weight["lips"].sum() > 10 and assets.skin_weight["sclera"].sum() > 4
    assert len(assets.scalp_faces) > 100 and len(assets.neck_faces) > 10
    result = r.render([(0, _frontal_keypoints(128, 90, 30))], W, H, seed=3)
    assert len(result.heads) == 1 and result.heads[0].landmarks[:, 2].sum() > 40
