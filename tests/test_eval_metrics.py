"""Hand-computed small cases for every shared metric, and COCO AP against pycocotools."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from vggheads.core.boxes import iou_matrix
from vggheads.core.metrics import coco_ap, failure_rate, match_hungarian, nme
from vggheads.evaluation.protocol_metrics import (
    chamfer_one_sided,
    procrustes,
    rotation_error_frobenius,
    voc_ap,
    z_n_accuracy,
)
from vggheads.evaluation.selection import select_by_iou, select_nearest, with_score_fallback
from vggheads.evaluation.types import HeadPrediction


def test_iou_continuous_and_plus_one():
    a, b = [[0, 0, 10, 10]], [[5, 0, 15, 10]]
    assert iou_matrix(a, b)[0, 0] == pytest.approx(50 / 150)
    # inclusive pixels: 11 x 11 boxes sharing a 6 x 11 strip
    assert iou_matrix(a, b, plus_one=True)[0, 0] == pytest.approx(66 / (121 + 121 - 66))
    assert iou_matrix(a, [[20, 20, 30, 30]])[0, 0] == 0.0
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 1)


def test_hungarian_matching_is_one_to_one_and_optimal():
    gt = [[0, 0, 10, 10], [3, 0, 13, 10]]
    # IoU p0: gt0 0.818, gt1 0.667; p1: gt0 0.667, gt1 0.333. Greedy on IoU gives p0-gt0 and leaves
    # p1 below 0.5; the optimal assignment matches both.
    preds = [[1, 0, 11, 10], [-2, 0, 8, 10]]
    pairs = match_hungarian(gt, preds, 0.5)
    assert [(g, p) for g, p, _ in pairs] == [(0, 1), (1, 0)]
    assert match_hungarian(gt, [[100, 100, 110, 110]], 0.5) == []


def test_nme_and_failure_rate_by_hand():
    gt = np.zeros((68, 2))
    pred = gt + [3.0, 4.0]  # every point 5 px off
    assert nme(pred, gt, norm_size=20.0) == pytest.approx(25.0)
    assert failure_rate([1.0, 6.0, 5.0, np.inf]) == pytest.approx(0.5)  # 6 and inf fail, 5 does not


def test_rotation_error_frobenius_by_hand():
    def rz(deg):
        t = np.radians(deg)
        return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])

    assert rotation_error_frobenius(np.eye(3), np.eye(3)) == pytest.approx(0.0)
    # ||I - R||_F^2 = 4 (1 - cos theta): 90 deg -> 2, 180 deg -> 2 sqrt 2
    assert rotation_error_frobenius(rz(90), np.eye(3)) == pytest.approx(2.0)
    assert rotation_error_frobenius(rz(30), rz(-150)) == pytest.approx(2 * np.sqrt(2))


def test_procrustes_recovers_a_similarity():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(7, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    Y = 2.5 * X @ q + [1.0, -2.0, 3.0]
    d, Z, (s, T, c) = procrustes(X, Y)
    assert d == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(Z, X, atol=1e-10)
    assert s == pytest.approx(1 / 2.5)
    # a mirrored copy is matched exactly with reflection allowed, not without
    Ym = Y * [1, 1, -1]
    assert procrustes(X, Ym)[0] == pytest.approx(0.0, abs=1e-12)
    assert procrustes(X, Ym, reflection=False)[0] > 0.01


def test_chamfer_one_sided_by_hand():
    source = [[0, 0, 0], [3, 0, 0]]
    target = [[0, 0, 0], [0, 4, 0]]
    assert chamfer_one_sided(source, target, squared=True) == pytest.approx((0 + 9) / 2)
    assert chamfer_one_sided(source, target, squared=False) == pytest.approx(1.5)


def test_z_n_accuracy_by_hand():
    # two far-apart pairs; each point's nearest neighbour is its pair partner
    gt = np.array([[0, 0, 0.0], [1, 0, 1.0], [10, 0, 2.0], [11, 0, 3.0]])
    assert z_n_accuracy(gt, gt, n=1) == 1.0
    pred = gt.copy()
    pred[2, 2], pred[3, 2] = 3.0, 2.0  # the second pair's depth order flips
    assert z_n_accuracy(pred, gt, n=1) == pytest.approx(0.5)


def test_voc_ap_by_hand():
    assert voc_ap([0.5, 1.0], [1.0, 0.5]) == pytest.approx(0.75)
    # the envelope lifts a dip: precision at recall 0.5 becomes max(0.4, 0.8)
    assert voc_ap([0.5, 0.5, 1.0], [1.0, 0.4, 0.8]) == pytest.approx(0.5 * 1.0 + 0.5 * 0.8)


def test_coco_ap_by_hand():
    gt = [np.array([[0, 0, 10, 10], [20, 0, 30, 10]])]
    dets = [np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 0, 30, 10]])]
    scores = [np.array([0.9, 0.8, 0.7])]
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: envelope 1 up to recall 0.5 (51 of the 101
    # recall points), 2/3 above (50 points)
    assert coco_ap(gt, dets, scores)["ap50"] == pytest.approx((51 * 1 + 50 * 2 / 3) / 101)


def _pycocotools(gts, dets, scores):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1} for i in range(len(gts))]
    anns, res = [], []
    for i, (g, d, s) in enumerate(zip(gts, dets, scores)):
        for b in g:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    "area": (b[2] - b[0]) * (b[3] - b[1]),
                }
            )
        for b, sc in zip(d, s):
            res.append(
                {
                    "image_id": i + 1,
                    "category_id": 1,
                    "score": float(sc),
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "face"}]}
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(res), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def test_coco_ap_agrees_with_pycocotools():
    pytest.importorskip("pycocotools")
    rng = np.random.default_rng(0)
    gts, dets, scores = [], [], []
    for _ in range(40):
        xy = rng.uniform(0, 300, (rng.integers(0, 7), 2))
        g = np.c_[xy, xy + rng.uniform(8, 80, (len(xy), 2))]
        d = [b + rng.normal(0, 5, 4) for b in g if rng.random() < 0.8]  # some degenerate after noise
        for _ in range(rng.integers(0, 4)):
            p = rng.uniform(0, 300, 2)
            d.append(np.r_[p, p + rng.uniform(8, 80, 2)])
        d = np.array(d).reshape(-1, 4)
        gts.append(g)
        dets.append(d)
        scores.append(rng.random(len(d)))
    ours = coco_ap(gts, dets, scores)
    stats = _pycocotools(gts, dets, scores)
    assert ours["ap"] == pytest.approx(stats[0], abs=1e-12)
    assert ours["ap50"] == pytest.approx(stats[1], abs=1e-12)
    assert ours["ap75"] == pytest.approx(stats[2], abs=1e-12)
    assert 0.1 < ours["ap50"] < 0.95  # a case with misses and false positives, not a trivial one


def test_selection_rules():
    a = HeadPrediction(box=[0, 0, 10, 10], score=0.9)
    b = HeadPrediction(box=[100, 100, 120, 120], score=0.3, face_box=[102, 102, 118, 118])
    assert select_by_iou([a, b], [101, 101, 119, 119]) is b
    assert select_by_iou([a, b], [500, 500, 510, 510]) is a  # no overlap: highest score
    assert select_by_iou([], [0, 0, 1, 1]) is None
    assert select_nearest([a, b], (320, 320)) is b
    assert with_score_fallback([a, b], 0.95, 0.1) == [a, b]  # nothing >= 0.95: fall back to 0.1
    assert with_score_fallback([a, b], 0.5, 0.1) == [a]


def test_head_prediction_checks_shapes():
    with pytest.raises(ValueError, match="landmarks"):
        HeadPrediction(box=[0, 0, 1, 1], score=1.0, landmarks=np.zeros((5, 2)))


def test_unitless_keys_finds_an_nme_angle_or_pixel_key_without_its_unit():
    from vggheads.core.metrics import NME_KEY, POSE_MAE_KEY, unitless_keys

    good = {NME_KEY: 2.9, POSE_MAE_KEY: 3.8, "ap50": 0.97, "failure_rate": 0.1, "protocol": {"angles": "ypr"}}
    assert unitless_keys(good) == []
    bad = {"nme": 2.9, "val": {"yaw": 3.0, "nme68_pct": 1.0}, "rows": [{"geodesic": 1.0}]}
    assert unitless_keys(bad) == ["nme", "val.yaw", "rows[0].geodesic"]
