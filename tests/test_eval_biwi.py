"""BIWI: the published subsets, the two Euler conventions, the protocol on stand-in frames."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from vggheads.errors import InputError
from vggheads.evaluation.angles import biwi_pose_matrix_angles, pyr_to_ypr, to_convention, ypr_to_pyr
from vggheads.evaluation.biwi import SUBSETS, evaluate_biwi, read_biwi, read_pose_txt
from vggheads.evaluation.types import HeadPrediction

SIZES = {"all": 15678, "biwi-plus": 15678, "fsa-net": 13219, "whenet": 15636, "dockerface": 15666}


@pytest.fixture
def annotations(shared_data):
    root = shared_data / "benchmarks" / "biwi_annotations"
    if not root.exists():
        pytest.skip(f"BIWI annotations not found at {root}")
    return root


@pytest.mark.parametrize("subset", sorted(SUBSETS))
def test_subsets_and_conventions(annotations, subset):
    frames = read_biwi(annotations, subset)
    assert len(frames) == SIZES[subset]
    assert frames[0].image == "01/frame_00003_rgb.png"
    ypr = np.array([f.ypr for f in frames])
    pyr = np.array([f.pyr for f in frames])
    # our conversion reproduces the published 'pyr' column from the 'ypr' one, on every frame
    np.testing.assert_allclose(ypr_to_pyr(ypr), pyr, atol=1e-9)
    np.testing.assert_allclose(pyr_to_ypr(pyr), ypr, atol=1e-9)
    boxes = np.array([f.box for f in frames])
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()


def test_fsa_subset_uses_the_non_calibrated_labels(annotations):
    fsa = {f.image: f for f in read_biwi(annotations, "fsa-net")}
    everything = {f.image: f for f in read_biwi(annotations, "all")}
    calibrated = {f.image: f for f in read_biwi(annotations, "biwi-plus")}
    name = "01/frame_00004_rgb.png"
    np.testing.assert_allclose(fsa[name].ypr, everything[name].ypr, atol=1e-3)
    assert np.abs(calibrated[name].ypr - fsa[name].ypr).max() > 0.3  # calibration moves the labels


def test_reader_errors(annotations, tmp_path):
    with pytest.raises(InputError, match="unknown BIWI subset"):
        read_biwi(annotations, "nope")
    with pytest.raises(InputError, match="Biwi_FSA-Net.npz"):
        read_biwi(tmp_path, "fsa-net")
    np.savez(tmp_path / "Biwi_FSA-Net.npz", images=np.array(["a"]), bbox=np.zeros((1, 4)), ypr=np.zeros((1, 3)))
    with pytest.raises(InputError, match="'pyr' missing"):
        read_biwi(tmp_path, "fsa-net")


def test_pose_matrix_formula_by_hand():
    # FSA-Net's formula on R^T: a rotation about z alone is a roll, about y alone a yaw
    Rz = Rotation.from_euler("z", 30, degrees=True).as_matrix()
    assert biwi_pose_matrix_angles(Rz) == pytest.approx((0.0, 0.0, 30.0), abs=1e-9)
    Ry = Rotation.from_euler("y", -20, degrees=True).as_matrix()
    assert biwi_pose_matrix_angles(Ry) == pytest.approx((-20.0, 0.0, 0.0), abs=1e-9)
    Rx = Rotation.from_euler("x", 10, degrees=True).as_matrix()
    assert biwi_pose_matrix_angles(Rx) == pytest.approx((0.0, -10.0, 0.0), abs=1e-9)


def test_to_convention_pyr():
    # the 'pyr' angles have the opposite signs (as in the published files: frame 3 of sequence 01
    # has yaw 3.29 in 'ypr' and -3.05 in 'pyr'); a pure yaw stays a pure yaw
    out = to_convention([[10.0, 0.0, 0.0]], "pyr")[0]
    assert out == pytest.approx([-10.0, 0.0, 0.0], abs=1e-9)
    out = to_convention([[30.0, 20.0, 10.0]], "pyr")[0]
    assert np.abs(out - [30.0, 20.0, 10.0]).max() > 0.5  # combined angles differ
    with pytest.raises(ValueError):
        to_convention([[0, 0, 0]], "rpy")


def _fake_biwi(tmp_path, n=3):
    """A subset file and 640x480 frames with pose.txt files, for the protocol."""
    root = tmp_path / "frames"
    (root / "01").mkdir(parents=True)
    rng = np.random.default_rng(0)
    ypr = rng.uniform(-30, 30, (n, 3))
    images = np.array([f"01/frame_{i:05d}_rgb.png" for i in range(n)])
    for i, name in enumerate(images):
        Image.new("RGB", (640, 480), (i * 40, 0, 0)).save(root / name)
        R = Rotation.from_euler("x", 5 * i, degrees=True).as_matrix()
        np.savetxt(root / name.replace("_rgb.png", "_pose.txt"), np.r_[R, [[1.0, 2.0, 900.0]]])
    ann = tmp_path / "ann"
    ann.mkdir()
    np.savez(
        ann / "Biwi_FSA-Net.npz",
        images=images,
        bbox=np.tile([270, 180, 140, 170], (n, 1)),
        ypr=ypr,
        pyr=ypr_to_pyr(ypr),
    )
    return ann, root, ypr


def test_protocol_on_stand_in_frames(tmp_path):
    ann, root, ypr = _fake_biwi(tmp_path)
    frames = read_biwi(ann, "fsa-net", root=root)
    by_red = {i * 40: f for i, f in enumerate(frames)}

    def predictor(image):
        f = by_red[int(image[0, 0, 0])]
        y, p, r = f.ypr
        good = HeadPrediction(box=[300, 250, 400, 380], score=0.9, angles=(y + 6.0, p, r))
        far = HeadPrediction(box=[0, 0, 60, 60], score=0.95, angles=(0.0, 0.0, 0.0))
        return [far, good]

    m = evaluate_biwi(frames, predictor, subset="fsa-net", progress=False).metrics
    assert m["images"] == 3 and m["missed"] == 0
    assert m["yaw_deg"] == pytest.approx(6.0) and m["pitch_deg"] == pytest.approx(0.0)
    m_pyr = evaluate_biwi(
        frames, predictor, subset="fsa-net", convention="pyr", selection="box-iou", progress=False
    ).metrics
    pred_pyr = ypr_to_pyr(ypr + [6.0, 0.0, 0.0])
    expected = np.abs(pred_pyr - ypr_to_pyr(ypr)).mean()
    assert m_pyr["mae_deg"] == pytest.approx(expected)
    assert m_pyr["pitch_deg"] > 0.0  # a yaw error leaks into pitch and roll in the other convention
    # the frames must exist
    with pytest.raises(InputError, match="none of the subset's frames"):
        evaluate_biwi(read_biwi(ann, "fsa-net"), predictor, progress=False)


def test_ground_truth_from_pose_txt(tmp_path):
    ann, root, _ = _fake_biwi(tmp_path)
    frames = read_biwi(ann, "fsa-net", root=root, gt_source="pose-txt")
    assert frames[2].ypr == pytest.approx((0.0, -10.0, 0.0), abs=1e-6)
    assert read_pose_txt(root / "01/frame_00001_pose.txt").shape == (3, 3)
    (root / "bad_pose.txt").write_text("1 2\n")
    with pytest.raises(InputError, match="bad_pose.txt"):
        read_pose_txt(root / "bad_pose.txt")
