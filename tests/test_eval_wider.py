"""WIDER FACE val: the reader on the real .mat files, the official algorithm by hand, the peers on
the real photos."""

from __future__ import annotations

import numpy as np
import pytest

from vggheads.errors import InputError
from vggheads.core.metrics import coco_ap
from vggheads.evaluation.wider import (
    WiderImage,
    evaluate_wider,
    read_prediction_files,
    read_wider_val,
    wider_ap,
    write_prediction_files,
)

PHOTOS = ("0_Parade_marchingband_1_765", "11_Meeting_Meeting_11_Meeting_Meeting_11_26")


@pytest.fixture
def wider_dir(shared_data):
    root = shared_data / "benchmarks" / "wider_val"
    if not (root / "wider_face_val.mat").exists():
        pytest.skip(f"WIDER FACE val ground truth not found at {root}")
    return root


@pytest.fixture
def wider_photos(wider_dir):
    images = read_wider_val(wider_dir, wider_dir)
    return [im for im in images if im.image_path is not None]


def test_reader_on_the_real_ground_truth(wider_dir):
    images = read_wider_val(wider_dir, wider_dir)
    assert len(images) == 3226
    assert sum(len(im.boxes) for im in images) == 39708
    assert [sum(len(im.keep[s]) for im in images) for s in ("easy", "medium", "hard")] == [7211, 13319, 31958]
    found = {im.name: im for im in images if im.image_path is not None}
    assert sorted(found) == sorted(PHOTOS)
    for name in PHOTOS:
        txt = np.loadtxt(wider_dir / f"{name}_gt_xywh.txt").reshape(-1, 4)
        np.testing.assert_array_equal(found[name].boxes, txt)
    assert found[PHOTOS[0]].event == "0--Parade"


def test_reader_errors_name_the_file(tmp_path, wider_dir):
    with pytest.raises(InputError, match="wider_face_val.mat"):
        read_wider_val(tmp_path)


def _image(keep=(0, 1)):
    boxes = np.array([[0, 0, 10, 10], [100, 0, 10, 10], [200, 0, 10, 10]], dtype=float)  # xywh; box 2 not kept
    k = np.array(keep)
    return WiderImage("0--Parade", "x", boxes, {"easy": k, "medium": k, "hard": k})


def test_official_algorithm_by_hand():
    image = _image()
    preds = np.array(
        [
            [0, 0, 10, 10, 0.9],  # hits kept box 0: TP
            [200, 0, 10, 10, 0.8],  # hits the non-kept box: ignored, not a proposal
            [300, 0, 10, 10, 0.7],  # nothing: FP
            [100, 0, 10, 10, 0.6],
        ]
    )  # hits kept box 1: TP
    ap = wider_ap([image], {("0--Parade", "x"): preds})["hard"]
    # scores normalise to 1, 2/3, 1/3, 0. Down to 0.334: P 1, R 1/2 (the ignored one changes
    # nothing); down to 0.001: P 1/2, R 1/2; at 0: P 2/3, R 1 -> AP = 1/2 * 1 + 1/2 * 2/3
    assert ap["ap"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert ap["faces"] == 2


def test_a_recalled_box_is_not_reassigned():
    image = _image()
    preds = np.array([[0, 0, 10, 10, 0.9], [1, 0, 10, 10, 0.8], [100, 0, 10, 10, 0.7]])
    # the second prediction's best box is already recalled: a false positive (P 1/2 at R 1/2),
    # the third recalls box 1 (P 2/3 at R 1)
    ap = wider_ap([image], {("0--Parade", "x"): preds})["easy"]
    assert ap["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_missing_predictions_are_an_error():
    with pytest.raises(InputError, match="no predictions"):
        wider_ap([_image()], {})


def test_prediction_files_round_trip_without_the_rstrip_bug(tmp_path):
    # 'pong' + '.jpg' -> rstrip('.jpg') would give 'pon'
    preds = {("1--Handshaking", "pong"): np.array([[1, 2, 3, 4, 0.5]]), ("1--Handshaking", "empty"): np.zeros((0, 5))}
    write_prediction_files(tmp_path, preds)
    back = read_prediction_files(tmp_path)
    assert sorted(back) == sorted(preds)
    np.testing.assert_allclose(back[("1--Handshaking", "pong")], preds[("1--Handshaking", "pong")])
    assert back[("1--Handshaking", "empty")].shape == (0, 5)


def test_close_to_coco_ap50_where_the_protocols_nearly_coincide():
    """No ignored box, no duplicate hits, large boxes (the +1 pixel hardly matters): WIDER's
    1000-threshold all-point AP and COCO's 101-point AP50 differ only by interpolation."""
    rng = np.random.default_rng(3)
    images, preds, gts, dts, scs = [], {}, [], [], []
    for i in range(60):
        xy = rng.uniform(0, 2000, (4, 2))
        boxes = np.c_[xy, rng.uniform(80, 200, (4, 2))]  # xywh
        keep = np.arange(4)
        images.append(WiderImage("e", str(i), boxes, {"easy": keep, "medium": keep, "hard": keep}))
        hits = boxes[rng.random(4) < 0.7] + rng.normal(0, 3, (1, 4))
        misses = np.c_[rng.uniform(3000, 4000, (1, 2)), rng.uniform(80, 200, (1, 2))]
        d = np.r_[hits, misses]
        s = rng.random(len(d))
        preds[("e", str(i))] = np.c_[d, s]
        gts.append(np.c_[boxes[:, :2], boxes[:, :2] + boxes[:, 2:]])
        dts.append(np.c_[d[:, :2], d[:, :2] + d[:, 2:]])
        scs.append(s)
    ours = wider_ap(images, preds)["hard"]["ap"]
    coco = coco_ap(gts, dts, scs, iou_thresholds=[0.5])["ap50"]
    assert ours == pytest.approx(coco, abs=0.01)


@pytest.fixture
def one_thread():
    """MTCNN's many small convolutions run faster on one thread than on two busy cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_mtcnn_scores_the_real_photos(wider_photos, one_thread):
    pytest.importorskip("facenet_pytorch", reason="install with: pip install --no-deps facenet-pytorch==2.6.0")
    from vggheads.evaluation.peers import MtcnnDetector

    result = evaluate_wider(wider_photos, MtcnnDetector(), system="mtcnn", progress=False)
    m = result.metrics
    assert m["images"] == 2 and m["faces_hard"] == 166
    assert m["detections"] > 40
    assert 0.30 < m["ap_hard"] < 0.90  # measured 0.529 on these two photos
    assert np.isnan(m["ap_easy"])  # neither photo has an easy face


def test_dlib_hog_scores_the_real_photos(wider_photos):
    pytest.importorskip("dlib")
    from vggheads.evaluation.peers import DlibHogDetector

    result = evaluate_wider(wider_photos, DlibHogDetector(upsample=2), system="dlib-hog", progress=False)
    assert result.metrics["detections"] > 20
    assert 0.10 < result.metrics["ap_hard"] < 0.80  # measured 0.272: tiny faces, tight dlib boxes
