"""The paper's validation NME and failure rate, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from vggheads.evaluation.synthetic import SyntheticImage, score_synthetic
from vggheads.evaluation.types import HeadPrediction


def _image():
    boxes = np.array([[0, 0, 100, 100], [200, 0, 250, 50], [400, 0, 440, 40]], dtype=float)
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(0, 100, (3, 68, 2)) + boxes[:, None, :2]
    return SyntheticImage("img0", None, boxes, landmarks)


def test_nme_failure_rate_and_misses_by_hand():
    im = _image()
    preds = [
        HeadPrediction(box=[2, 0, 102, 100], score=0.9, landmarks=im.landmarks[0] + [3.0, 4.0]),  # 5 px / 100 = 5 %
        HeadPrediction(box=[201, 0, 251, 50], score=0.8, landmarks=im.landmarks[1] + [0.0, 6.0]),  # 6 px / 50 = 12 %
        HeadPrediction(box=[600, 600, 700, 700], score=0.7, landmarks=im.landmarks[2]),  # matches nothing
    ]
    metrics, records, _ = score_synthetic([im], [preds])
    assert metrics["heads"] == 3 and metrics["matched"] == 2
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["nme_pct"] == pytest.approx((5.0 + 12.0) / 2)
    assert metrics["failure_rate"] == pytest.approx(0.5)  # 12 % fails, 5 % does not (> 5 % fails)
    assert metrics["failure_rate_with_misses"] == pytest.approx(2 / 3)
    assert sorted(r["nme_pct"] for r in records) == pytest.approx([5.0, 12.0])
    # AP50: two hits ranked above the false positive, one GT never found
    assert metrics["ap50"] == pytest.approx((67 * 1.0) / 101)


def test_matching_needs_iou_half():
    im = _image()
    # overlaps head 0 with IoU 1/3 only
    preds = [HeadPrediction(box=[50, 0, 150, 100], score=0.9, landmarks=im.landmarks[0])]
    metrics, _, _ = score_synthetic([im], [preds])
    assert metrics["matched"] == 0 and "nme_pct" not in metrics


def test_head_vertices_need_the_subset():
    from vggheads.errors import InputError

    with pytest.raises(InputError, match="head"):
        score_synthetic([_image()], [[]], points="head_vertices")
