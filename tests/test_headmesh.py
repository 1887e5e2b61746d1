"""Head-mesh conditioning without SDXL: the scene's condition images against its truth, the agreement
measure and the filter's agreement rule (the SDXL side is in tests/test_sdxl.py)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from vggheads.filtering.agreement import SceneHeads, disagrees, measure
from vggheads.schemas import from_rows, read_table, write_table


@pytest.fixture(scope="module")
def conditioner(head_model):
    from vggheads.render.scene_conditions import SceneConditioner

    return SceneConditioner(head_model, {"supersample": 2}, min_confidence=0.3)


def _persons(seed: int, n: int, width: int, height: int):
    from vggheads.poses.procedural import sample_scene

    return [(k, p.keypoints) for k, p in enumerate(sample_scene(n, width, height, np.random.default_rng(seed)))]


# ---------------------------------------------------------------------------------------------
# condition images


def test_pncc_colours_are_head_detectors_normalised_template():
    from vggheads.render.scene_conditions import pncc_colors

    template = np.array([[-0.1, 0.2, 0.05], [0.1, -0.05, 0.1], [0.02, 0.1, 0.3], [5.0, 5.0, 5.0]])
    c = pncc_colors(template, np.array([0, 1, 2]))
    # per axis over the subset, with 0 inside the range (min(initial=0), max(initial=0))
    np.testing.assert_allclose(c[0], [0.0, 1.0, 0.0 / 0.3 + 0.05 / 0.3])
    np.testing.assert_allclose(c[1], [1.0, 0.0, 0.1 / 0.3])
    np.testing.assert_allclose(c[2, 2], 1.0)
    np.testing.assert_allclose(c[3], [1.0, 1.0, 1.0])  # outside the subset: clipped


def test_depth_map_is_near_bright_ordered_and_keeps_every_heads_relief():
    from vggheads.render.scene_conditions import DEPTH_FLOOR, depth_map

    z = np.full((4, 6), np.inf)
    z[0, :3] = [1.0, 1.1, 1.2]  # a near head with a little relief
    z[1, :3] = [500.0, 500.1, 500.2]  # a far one, 500 units behind
    z[2, 0] = 1.0  # the same depth, the same value
    d = depth_map(z)
    assert d.shape == (4, 6, 3) and d.dtype == np.uint8 and (d[..., 0] == d[..., 2]).all()
    v = d[..., 0].astype(int)
    assert v[3].max() == 0 and v[0, 0] == 255 and v[2, 0] == 255
    assert v[0, 0] > v[0, 1] > v[0, 2] > v[1, 0] > v[1, 1] > v[1, 2] > 0  # the order, and relief, everywhere
    assert v[1, 2] == round(DEPTH_FLOOR * 255)


def test_scene_truth_is_the_procedural_backends_and_the_conditions_show_it(conditioner):
    """At the canvas size the head-mesh scene is the procedural backend's scene, number for number;
    its visible landmarks fall on the PNCC heads; its boxes hold them; the depth map covers them."""
    width, height = 320, 240
    persons = _persons(7, 3, width, height)
    cond = conditioner(persons, (width, height), (width, height), seed=11)
    proc = conditioner.renderer.render(persons, width, height, 11)
    assert len(cond.heads) == len(proc.heads) == 3
    for a, b in zip(cond.heads, proc.heads):
        assert a.person == b.person
        np.testing.assert_array_equal(a.params, b.params)
        np.testing.assert_array_equal(a.box, b.box)
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
    np.testing.assert_array_equal(cond.image, proc.image)
    pncc, depth = cond.maps["pncc"], cond.maps["depth"]
    assert pncc.shape == depth.shape == (height, width, 3)
    on_head = pncc.sum(axis=2) > 0
    inside_a_box = np.zeros_like(on_head)
    for h in cond.heads:
        x1, y1, x2, y2 = np.floor(h.box[:2]).astype(int).tolist() + np.ceil(h.box[2:]).astype(int).tolist()
        inside_a_box[max(y1 - 1, 0) : y2 + 1, max(x1 - 1, 0) : x2 + 1] = True
        assert on_head[y1:y2, x1:x2].any()
        vis = h.landmarks[:, 2] > 0.5
        px = np.clip(np.floor(h.landmarks[vis, :2]).astype(int), 0, [width - 1, height - 1])
        assert on_head[px[:, 1], px[:, 0]].mean() > 0.9  # seen in the truth = drawn in the PNCC
        assert (depth[px[:, 1], px[:, 0], 0] > 0).all()
    assert (on_head & ~inside_a_box).sum() <= 0.01 * on_head.sum()  # no PNCC head outside the truth's boxes
    assert (depth[..., 0] > 0).sum() > on_head.sum()  # bodies and hair are in the depth map


def test_the_scene_follows_the_render_size(conditioner):
    """Keypoints are scaled to the size SDXL paints (x and y apart, as the skeleton image is resized):
    the truth is in the pixels of the painted image."""
    persons = _persons(3, 2, 512, 384)
    full = conditioner(persons, (512, 384), (512, 384), seed=5)
    half = conditioner(persons, (512, 384), (256, 192), seed=5)
    assert half.maps["pncc"].shape == (192, 256, 3) and len(half.heads) == len(full.heads)
    for a, b in zip(full.heads, half.heads):
        np.testing.assert_allclose(b.box, a.box / 2, atol=2.0)
        np.testing.assert_allclose(b.params[412], a.params[412] / 2, rtol=0.05)  # the scale, in pixels per metre
    only_depth = conditioner(persons, (512, 384), (256, 192), seed=5, maps=("depth",))
    assert set(only_depth.maps) == {"depth"}
    np.testing.assert_array_equal(only_depth.maps["depth"], half.maps["depth"])
    with pytest.raises(ValueError, match="unknown condition maps"):
        conditioner(persons, (512, 384), (256, 192), seed=5, maps=("canny",))


# ---------------------------------------------------------------------------------------------
# the agreement measure


def _scene(boxes):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lm = np.zeros((len(boxes), 68, 3))
    for i, b in enumerate(boxes):
        lm[i, :, 0] = np.linspace(b[0], b[2], 68)
        lm[i, :, 1] = np.linspace(b[1], b[3], 68)
        lm[i, :34, 2] = 1.0
    return SceneHeads(np.arange(len(boxes)) + 10, boxes, lm)


def test_agreement_of_boxes():
    scene = _scene([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]])
    a = measure(scene, scene.boxes)
    assert (a.matched, a.recall, a.precision, a.f1, a.mean_iou) == (3, 1.0, 1.0, 1.0, 1.0)
    assert [h["head"] for h in a.heads] == [10, 11, 12] and all(h["matched"] for h in a.heads)
    # one head not painted, one extra person, one a little off
    det = np.array([[0, 0, 10, 10], [21, 0, 31, 10], [70, 0, 80, 10]])
    a = measure(scene, det, min_iou=0.5)
    assert (a.scene_heads, a.detected, a.matched) == (3, 3, 2)
    assert a.recall == pytest.approx(2 / 3) and a.precision == pytest.approx(2 / 3) and a.f1 == pytest.approx(2 / 3)
    assert a.heads[1]["iou"] == pytest.approx(90 / 110) and not a.heads[2]["matched"] and a.heads[2]["iou"] == 0
    np.testing.assert_array_equal(a.heads[1]["detected_box"], det[1])
    assert np.isnan(a.heads[2]["detected_box"]).all()
    assert a.mean_iou == pytest.approx((1 + 90 / 110 + 0) / 3)
    # a looser threshold matches the shifted head, a stricter one does not
    assert measure(scene, det, min_iou=0.85).matched == 1
    # nothing in the scene and nothing found: agreement; nothing found: none
    empty = measure(None, np.zeros((0, 4)))
    assert empty.f1 == 1.0 and np.isnan(empty.mean_iou) and empty.heads == []
    assert measure(scene, np.zeros((0, 4))).f1 == 0.0
    assert measure(None, det).f1 == 0.0


def test_agreement_of_landmarks_and_the_rule():
    scene = _scene([[0, 0, 10, 10], [20, 0, 30, 10]])
    labels = scene.landmarks.copy()
    labels[0, :, 0] += 1.0  # 1 px off on a 10 px head: NME 10 %
    a = measure(scene, scene.boxes, scene.boxes, labels)
    assert a.heads[0]["nme"] == pytest.approx(10.0) and a.heads[1]["nme"] == pytest.approx(0.0)
    assert a.heads[0]["nme_visible"] == pytest.approx(10.0) and a.nme == pytest.approx(5.0)
    assert np.isnan(measure(scene, scene.boxes).nme)  # no labeller: not measured
    only_one = measure(scene, scene.boxes, scene.boxes[1:], labels[1:])  # a labelled head is matched by its box
    assert np.isnan(only_one.heads[0]["nme"]) and only_one.heads[1]["nme"] == pytest.approx(0.0)
    assert not disagrees(a, min_f1=0.9, max_nme_pct=6.0) and disagrees(a, min_f1=0.9, max_nme_pct=4.0)
    assert not disagrees(a, min_f1=0.9, max_nme_pct=None)
    assert disagrees(measure(scene, scene.boxes[:1]), min_f1=0.9, max_nme_pct=None)  # F1 2/3
    assert not disagrees(measure(scene, scene.boxes[:1]), min_f1=0.6, max_nme_pct=None)


# ---------------------------------------------------------------------------------------------
# the filter's agreement rule


@pytest.fixture
def mesh_shard(tmp_path, conditioner):
    """A shard as a head-mesh render leaves it: images, render table, the scene truth."""
    from PIL import Image

    from vggheads.render.truth_rows import head_rows

    images = tmp_path / "images"
    images.mkdir()
    rows, heads = [], []
    for i, n in enumerate([1, 2, 3, 2]):
        sid = f"00000_{i:06d}"
        c = conditioner(_persons(20 + i, n, 160, 120), (160, 120), (160, 120), seed=i)
        Image.fromarray(c.image).save(images / f"{sid}.png")
        rows.append(
            {
                "sample_id": sid,
                "image": f"{sid}.png",
                "width": 160,
                "height": 120,
                "backend": "tiny-sdxl",
                "seed": i,
                "prompt": "p",
                "negative_prompt": "",
                "base_model": "b",
                "condition_model": "c",
                "seconds": 0.0,
            }
        )
        heads += head_rows(sid, c.heads)
    write_table(from_rows("render", rows), tmp_path / "render.parquet", "render")
    write_table(from_rows("render_heads", heads), tmp_path / "heads.parquet", "render_heads")
    return tmp_path


def _head_mesh_params(params):
    p = copy.deepcopy(params)
    p["render"]["backend"] = "tiny-sdxl"
    p["render"]["sdxl"]["conditioning"] = "pose+head-mesh"
    p["filter"].update(flip=False, split=False, face=False)
    p["tracking"]["enabled"] = False
    return p


def _run_filter(p, shard, detections, labels=None, truth=True):
    from vggheads.stages.filter import FilterJob, filter_shard

    write_table(from_rows("detections", detections), shard / "det.parquet", "detections")
    stats = filter_shard(
        p,
        FilterJob(
            shard="00000",
            render_table=shard / "render.parquet",
            images=shard / "images",
            detections=shard / "det.parquet",
            weights=shard / "none.pt",
            out=shard / "filter.parquet",
            stats=shard / "stats.json",
            truth=shard / "heads.parquet" if truth else None,
            labels=labels,
            agreement=shard / "agreement.parquet",
            agreement_heads=shard / "agreement_heads.parquet",
        ),
    )
    filt = {r["sample_id"]: r for r in read_table(shard / "filter.parquet", "filter").to_pylist()}
    agree = {r["sample_id"]: r for r in read_table(shard / "agreement.parquet", "agreement").to_pylist()}
    return stats, filt, agree


def test_filter_drops_images_that_disagree_with_their_scene(params, mesh_shard):
    truth = read_table(mesh_shard / "heads.parquet", "render_heads").to_pylist()
    # the detector finds every scene head of images 0 and 1, misses one of image 2, adds one to image 3
    dets = [
        {"sample_id": t["sample_id"], "head": i, "box": t["box"], "score": 0.9}
        for i, t in enumerate(truth)
        if not (t["sample_id"].endswith("2") and t["head"] == 0)
    ]
    dets.append({"sample_id": "00000_000003", "head": 99, "box": [0, 0, 20, 20], "score": 0.9})
    p = _head_mesh_params(params)
    stats, filt, agree = _run_filter(p, mesh_shard, dets)
    assert [filt[s]["keep"] for s in sorted(filt)] == [True, True, False, False]
    assert filt["00000_000002"]["reason"] == filt["00000_000003"]["reason"] == "agreement"
    assert stats["reasons"]["agreement"] == 2 and stats["kept"] == 2
    assert agree["00000_000002"]["f1"] == pytest.approx(0.8) and agree["00000_000003"]["f1"] == pytest.approx(0.8)
    assert agree["00000_000000"]["f1"] == 1.0 and agree["00000_000000"]["mean_iou"] == pytest.approx(1.0)
    assert [agree[s]["agree"] for s in sorted(agree)] == [True, True, False, False]
    per_head = read_table(mesh_shard / "agreement_heads.parquet", "agreement_heads").to_pylist()
    assert len(per_head) == len(truth) and sum(not h["matched"] for h in per_head) == 1
    s = stats["agreement"]
    assert s["images"] == 4 and s["scene_heads"] == len(truth) and s["disagreeing"] == 2
    assert s["mean_f1"] == pytest.approx((1 + 1 + 0.8 + 0.8) / 4, abs=1e-4)
    assert sum(s["f1_histogram"]["counts"]) == 4 and s["f1_histogram"]["counts"][-1] == 2
    assert json.loads((mesh_shard / "stats.json").read_text())["agreement"]["disagreeing"] == 2
    # measured only: the same figures, nothing dropped
    p["filter"]["agreement"]["enabled"] = False
    stats, filt, agree2 = _run_filter(p, mesh_shard, dets)
    assert all(r["keep"] for r in filt.values()) and stats["reasons"]["agreement"] == 0
    same = lambda rows: {s: {k: v for k, v in r.items() if k != "nme"} for s, r in rows.items()}  # nme: NaN
    assert same(agree2) == same(agree) and all(np.isnan(r["nme"]) for r in agree2.values())
    # a looser threshold keeps image 2 and 3 (F1 0.8)
    p["filter"]["agreement"].update(enabled=True, min_f1=0.75)
    assert _run_filter(p, mesh_shard, dets)[0]["reasons"]["agreement"] == 0


def test_landmark_agreement_uses_a_labeller_that_reads_the_image(params, mesh_shard):
    truth = read_table(mesh_shard / "heads.parquet", "render_heads").to_pylist()
    dets = [{"sample_id": t["sample_id"], "head": i, "box": t["box"], "score": 0.9} for i, t in enumerate(truth)]
    labels = []
    for i, t in enumerate(truth):
        lm = np.asarray(t["landmarks"], np.float32).reshape(68, 3).copy()
        box = np.asarray(t["box"])
        if t["sample_id"].endswith("1"):  # landmarks 20 % of the head size off
            lm[:, 0] += 0.2 * np.sqrt((box[2] - box[0]) * (box[3] - box[1]))
        labels.append(
            {
                "sample_id": t["sample_id"],
                "head": i,
                "box": t["box"],
                "extended_box": t["box"],
                "score": 0.9,
                "flame_params": t["flame_params"],
                "landmarks": lm,
                "yaw": 0.0,
                "pitch": 0.0,
                "roll": 0.0,
                "labeller": "landmark-fit",
            }
        )
    write_table(from_rows("labels", labels), mesh_shard / "labels.parquet", "labels")
    p = _head_mesh_params(params)
    stats, filt, agree = _run_filter(p, mesh_shard, dets, labels=mesh_shard / "labels.parquet")
    assert agree["00000_000001"]["nme"] == pytest.approx(20.0, rel=1e-3) and agree["00000_000000"]["nme"] < 1e-3
    assert [filt[s]["reason"] for s in sorted(filt)] == ["", "agreement", "", ""]
    assert stats["agreement"]["mean_nme_pct"] == pytest.approx(5.0, rel=1e-3)
    from vggheads.core.metrics import unitless_keys

    assert unitless_keys(stats) == []  # NME keys name their unit (issue 15)
    # the truth labeller copies the scene: nothing to compare
    for row in labels:
        row["labeller"] = "truth"
    write_table(from_rows("labels", labels), mesh_shard / "labels.parquet", "labels")
    stats, filt, agree = _run_filter(p, mesh_shard, dets, labels=mesh_shard / "labels.parquet")
    assert all(np.isnan(r["nme"]) for r in agree.values()) and all(r["keep"] for r in filt.values())


def test_the_agreement_labeller_reads_the_scene_heads_on_the_image(params, mesh_shard, head_model_file):
    """filter.agreement.labeller runs on the scene's boxes, so the labels can stay the scene's exact truth
    (labels.labeller: truth) while a real labeller checks the painted faces."""
    from vggheads.stages.filter import FilterJob, filter_shard

    truth = read_table(mesh_shard / "heads.parquet", "render_heads").to_pylist()
    dets = [{"sample_id": t["sample_id"], "head": i, "box": t["box"], "score": 0.9} for i, t in enumerate(truth)]
    write_table(from_rows("detections", dets), mesh_shard / "det.parquet", "detections")
    p = _head_mesh_params(params)
    p["filter"]["agreement"].update(labeller="landmark-fit", max_nme_pct=None)

    def run():
        return filter_shard(
            p,
            FilterJob(
                shard="00000",
                render_table=mesh_shard / "render.parquet",
                images=mesh_shard / "images",
                detections=mesh_shard / "det.parquet",
                weights=mesh_shard / "none.pt",
                out=mesh_shard / "filter.parquet",
                stats=mesh_shard / "stats.json",
                truth=mesh_shard / "heads.parquet",
                agreement=mesh_shard / "agreement.parquet",
                agreement_heads=mesh_shard / "agreement_heads.parquet",
                head_model=head_model_file,
            ),
        )

    stats = run()
    heads = read_table(mesh_shard / "agreement_heads.parquet", "agreement_heads").to_pylist()
    nme = np.array([h["nme"] for h in heads])
    assert np.isfinite(nme).mean() > 0.5 and (nme[np.isfinite(nme)] > 0).all()  # measured, and not a copy of the scene
    assert stats["reasons"]["agreement"] == 0 and stats["agreement"]["mean_nme_pct"] > 0
    p["filter"]["agreement"]["max_nme_pct"] = float(np.nanmin(nme)) / 2  # every measured image now disagrees
    stats = run()
    rows = read_table(mesh_shard / "agreement.parquet", "agreement").to_pylist()
    assert stats["reasons"]["agreement"] == sum(np.isfinite(r["nme"]) for r in rows) > 0
    from vggheads.errors import ConfigError

    with pytest.raises(ConfigError, match="--head-model"):
        filter_shard(
            p,
            FilterJob(
                shard="00000",
                render_table=mesh_shard / "render.parquet",
                images=mesh_shard / "images",
                detections=mesh_shard / "det.parquet",
                weights=mesh_shard / "none.pt",
                out=mesh_shard / "filter.parquet",
                stats=mesh_shard / "stats.json",
                truth=mesh_shard / "heads.parquet",
            ),
        )


def test_other_renders_are_not_measured(params, mesh_shard):
    from vggheads.errors import ConfigError

    truth = read_table(mesh_shard / "heads.parquet", "render_heads").to_pylist()
    dets = [{"sample_id": t["sample_id"], "head": i, "box": t["box"], "score": 0.9} for i, t in enumerate(truth)][:1]
    p = _head_mesh_params(params)
    p["render"]["sdxl"]["conditioning"] = "adapter"  # a pose-only SDXL render: no scene to agree with
    stats, filt, agree = _run_filter(p, mesh_shard, dets)
    assert stats["agreement"] is None and agree == {} and stats["reasons"]["agreement"] == 0
    p["render"]["sdxl"]["conditioning"] = "head-mesh"
    with pytest.raises(ConfigError, match="--truth"):
        _run_filter(p, mesh_shard, dets, truth=False)


def test_the_card_shows_the_agreement_distribution(params, mesh_shard, tmp_path):
    from vggheads.manifest.card import DatasetCard
    from vggheads.stages.build_manifest import add_agreement

    truth = read_table(mesh_shard / "heads.parquet", "render_heads").to_pylist()
    dets = [{"sample_id": t["sample_id"], "head": i, "box": t["box"], "score": 0.9} for i, t in enumerate(truth)][:3]
    _run_filter(_head_mesh_params(params), mesh_shard, dets)
    card = DatasetCard()
    add_agreement(card, [mesh_shard / "agreement.parquet"])
    doc = card.to_dict()["agreement"]
    rows = read_table(mesh_shard / "agreement.parquet", "agreement").to_pylist()
    assert doc["images"] == 4 and doc["agree"] == sum(r["agree"] for r in rows)
    assert sum(doc["histograms"]["f1"]["counts"]) == 4
    assert doc["mean_f1"] == pytest.approx(np.mean([r["f1"] for r in rows]), abs=1e-4)
    written = {p.name for p in card.write_plots(tmp_path / "plots")}
    assert {"agreement_f1.png", "agreement_iou.csv", "agreement_nme.png"} <= written
    # cards of other renders have no agreement section
    plain = DatasetCard()
    add_agreement(plain, [])
    assert "agreement" not in plain.to_dict()
