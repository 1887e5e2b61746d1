"""FDDB: the reader on the real folds, ellipse geometry, FDDB's ROC by hand, AP50."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vggheads.errors import InputError
from vggheads.evaluation.fddb import (
    FddbImage,
    ellipse_boxes,
    image_results,
    overlap_matrix,
    read_fddb,
    roc,
    score_fddb,
    tpr_at_fp,
)


@pytest.fixture
def folds(shared_data):
    root = shared_data / "benchmarks" / "fddb_folds"
    if not root.exists():
        pytest.skip(f"FDDB folds not found at {root}")
    return root


def test_reader_on_the_real_folds(folds):
    images = read_fddb(folds)
    assert len(images) == 2845
    assert sum(len(im.ellipses) for im in images) == 5171
    assert {im.fold for im in images} == set(range(1, 11))
    first = images[0]
    assert first.name == "2002/08/11/big/img_591" and first.fold == 1
    np.testing.assert_allclose(first.ellipses, [[123.5833, 85.5495, 1.265839, 269.6934, 161.7812]], atol=1e-4)
    assert first.image_path is None  # no originalPics here
    assert len(read_fddb(folds, folds=[3])) == len(
        [line for line in (folds / "FDDB-fold-03.txt").read_text().split() if line]
    )


def test_reader_errors_name_file_and_line(tmp_path):
    (tmp_path / "FDDB-fold-01.txt").write_text("a/img_1\n")
    (tmp_path / "FDDB-fold-01-ellipseList.txt").write_text("a/img_1\n1\n10 5 0.1\n")
    with pytest.raises(InputError, match=r"FDDB-fold-01-ellipseList.txt:3"):
        read_fddb(tmp_path, folds=[1])
    (tmp_path / "FDDB-fold-01-ellipseList.txt").write_text("a/img_2\n0\n")
    with pytest.raises(InputError, match="differ"):
        read_fddb(tmp_path, folds=[1])
    with pytest.raises(InputError, match="FDDB-fold-02.txt"):
        read_fddb(tmp_path, folds=[2])


def test_ellipse_extent_by_hand():
    boxes = ellipse_boxes([[20, 10, 0.0, 100, 50], [20, 10, math.pi / 2, 100, 50]])
    np.testing.assert_allclose(boxes, [[80, 40, 120, 60], [90, 30, 110, 70]], atol=1e-9)


def test_pixel_overlap_of_an_ellipse_with_its_extent():
    ell = np.array([[60, 40, 0.3, 200, 150]])
    ext = ellipse_boxes(ell)
    xywh = np.c_[ext[:, :2], ext[:, 2:] - ext[:, :2]]
    # an axis-aligned ellipse fills pi/4 of its box; rotated, less
    assert overlap_matrix(ell, xywh)[0, 0] < math.pi / 4
    upright = np.array([[60, 40, 0.0, 200, 150]])
    ext = ellipse_boxes(upright)
    assert overlap_matrix(upright, np.c_[ext[:, :2], ext[:, 2:] - ext[:, :2]])[0, 0] == pytest.approx(
        math.pi / 4, abs=0.02
    )
    assert overlap_matrix(upright, [[400, 400, 10, 10]])[0, 0] == 0.0


def test_roc_by_hand():
    big = np.array([[40, 30, 0.0, 100, 100]])
    on_face = [60, 70, 80, 60]  # the ellipse's extent: overlap pi/4
    elsewhere = [300, 300, 50, 50]
    # image 1: a hit (0.9) and a false positive (0.5); image 2: a face and no detection
    ov = overlap_matrix(big, [on_face, elsewhere], size=(400, 400))
    res1 = image_results(ov, np.array([0.9, 0.5]))
    assert [(t, tp, fp) for t, tp, _, fp in res1] == [(0.5, 1, 1), (0.9, 1, 0)]
    curve = roc([(1, res1), (1, [])])
    np.testing.assert_allclose(curve["threshold"], [0.5, 0.9])
    np.testing.assert_allclose(curve["tpr"], [0.5, 0.5])
    np.testing.assert_allclose(curve["fp"], [1, 0])
    assert tpr_at_fp(curve, 0) == 0.5


def test_roc_matches_one_to_one():
    ov = np.array([[0.8, 0.7]])  # two detections on one face
    res = image_results(ov, np.array([0.9, 0.6]))
    # at 0.6 both are kept: one TP, one FP; at 0.9 only the first: one TP
    assert [(tp, fp) for _, tp, _, fp in res] == [(1, 1), (1, 0)]
    assert res[0][2] == pytest.approx(0.8)  # the continuous score takes the better pair


def test_score_fddb_perfect_and_empty():
    images = [
        FddbImage("a", 1, np.array([[40, 30, 0.0, 100, 100]]), size=(300, 300)),
        FddbImage("b", 1, np.array([[20, 15, 0.2, 50, 60], [25, 20, -0.1, 200, 150]]), size=(300, 300)),
    ]
    boxes = {im.name: ellipse_boxes(im.ellipses) for im in images}
    scores = {"a": np.array([0.9]), "b": np.array([0.8, 0.7])}
    metrics, curves = score_fddb(images, boxes, scores)
    assert metrics["ap50"] == pytest.approx(1.0)
    assert metrics["faces"] == 3
    assert metrics["disc_tpr_at_1000fp"] == pytest.approx(1.0)
    assert curves["disc_roc"]["fp"][0] == 0
    none, _ = score_fddb(images, {}, {})
    assert none["ap50"] == 0.0 and none["disc_tpr_at_1000fp"] == 0.0
