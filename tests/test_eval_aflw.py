"""AFLW2000-3D: the reader on the real samples, the angle convention, and the pose/NME protocol."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from scipy.io import savemat
from scipy.spatial.transform import Rotation

from vggheads.errors import InputError
from vggheads.evaluation.aflw2000 import evaluate_aflw2000, read_aflw2000, read_sample
from vggheads.evaluation.types import HeadPrediction

# (yaw, pitch, roll) degrees of the samples, from Pose_Para (pitch, yaw, roll in radians)
KNOWN = {
    "image00050": (0.939, -4.664, 5.636),
    "image00251": (-54.685, 6.995, -14.579),
    "image00475": (65.621, 39.959, 19.990),
    "image00516": (-35.709, -0.990, 5.617),
    "image01322": (-5.382, -13.587, -1.683),
    "image02420": (70.899, -10.324, -8.707),
    "image02616": (37.968, -13.466, -13.107),
    "image03614": (17.553, 0.350, -3.433),
}


def test_reader_gives_the_known_angles(aflw):
    samples, filtered = read_aflw2000(aflw)
    assert filtered == 0
    assert [s.name for s in samples] == sorted(KNOWN)
    for s in samples:
        assert s.angles == pytest.approx(KNOWN[s.name], abs=1e-3)
        assert s.landmarks.shape == (68, 3)
    # by hand: image00050 has Pose_Para[:3] = (-0.0813944, 0.0163899, 0.0983614) rad
    s = {x.name: x for x in samples}
    assert s["image00050"].pitch == pytest.approx(-0.0813944 * 180 / math.pi, abs=1e-4)
    assert s["image00050"].yaw == pytest.approx(0.0163899 * 180 / math.pi, abs=1e-4)
    assert s["image00251"].yaw == pytest.approx(-0.9544388 * 180 / math.pi, abs=1e-4)
    # the GT box is the extent of pt3d_68
    np.testing.assert_allclose(s["image00050"].box[:2], s["image00050"].landmarks[:, :2].min(0))


def test_pose_para_convention_matches_the_landmarks(aflw):
    """Relative rotations between samples, measured on their 3D landmarks by Procrustes, agree with
    the rotations built from Pose_Para in the paper's convention (geometry.angles_to_matrix)."""
    from vggheads.geometry.rotations import angles_to_matrix

    samples, _ = read_aflw2000(aflw)
    flip = np.diag([1.0, -1.0, -1.0])
    errors = []
    for a in samples:
        for b in samples:
            if a is b:
                continue
            # image (y down) -> y up, the frame of 3DDFA's R
            Pa, Pb = a.landmarks * [1, -1, 1], b.landmarks * [1, -1, 1]
            Pa, Pb = Pa - Pa.mean(0), Pb - Pb.mean(0)
            U, _, Vt = np.linalg.svd(Pa.T @ Pb)
            Q = U @ np.diag([1, 1, np.sign(np.linalg.det(U @ Vt))]) @ Vt  # Pa ~ Q Pb
            Ra = flip @ angles_to_matrix(*a.angles)
            Rb = flip @ angles_to_matrix(*b.angles)
            errors.append(np.degrees(Rotation.from_matrix(Q.T @ Ra @ Rb.T).magnitude()))
    # different people and expressions: a few degrees; a wrong convention gives tens of degrees
    assert np.median(errors) < 3.0
    assert np.max(errors) < 6.0


def test_reader_errors_name_the_file_and_field(tmp_path):
    savemat(tmp_path / "image1.mat", {"Pose_Para": np.zeros((1, 7))})
    (tmp_path / "image1.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"image1\.mat.*'pt3d_68'"):
        read_sample(tmp_path / "image1.mat")
    savemat(tmp_path / "image2.mat", {"Pose_Para": np.zeros((1, 7)), "pt3d_68": np.zeros((2, 68))})
    (tmp_path / "image2.jpg").write_bytes(b"")
    with pytest.raises(InputError, match=r"'pt3d_68' has shape \(2, 68\)"):
        read_sample(tmp_path / "image2.mat")
    with pytest.raises(InputError, match="folder not found"):
        read_aflw2000(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no .mat files"):
        read_aflw2000(tmp_path / "empty")


def test_filter_leaves_out_large_angles(tmp_path):
    for name, pitch in (("a", 0.1), ("b", math.radians(100))):
        savemat(
            tmp_path / f"{name}.mat", {"Pose_Para": np.array([[pitch, 0, 0, 0, 0, 0, 1]]), "pt3d_68": np.ones((3, 68))}
        )
        (tmp_path / f"{name}.jpg").write_bytes(b"")
    kept, filtered = read_aflw2000(tmp_path)
    assert [s.name for s in kept] == ["a"] and filtered == 1


class Oracle:
    """Returns each sample's own GT (recognised by its pixels), optionally perturbed."""

    def __init__(self, samples, d_yaw=0.0, landmark_shift=0.0):
        from vggheads.core.images import load_rgb

        self.by_hash = {hashlib.sha1(load_rgb(s.image_path).tobytes()).hexdigest(): s for s in samples}
        self.d_yaw, self.shift = d_yaw, landmark_shift

    def __call__(self, image):
        s = self.by_hash[hashlib.sha1(image.tobytes()).hexdigest()]
        decoy = HeadPrediction(box=[0, 0, 20, 20], score=0.99, angles=(90, 90, 90))
        head = HeadPrediction(
            box=s.box,
            score=0.8,
            angles=(s.yaw + self.d_yaw, s.pitch, s.roll),
            landmarks=s.landmarks[:, :2] + self.shift,
        )
        return [decoy, head]


def test_protocol_scores_an_oracle_and_a_known_error(aflw):
    samples, _ = read_aflw2000(aflw)
    exact = evaluate_aflw2000(samples, Oracle(samples), progress=False).metrics
    assert exact["mae_deg"] == pytest.approx(0.0, abs=1e-9)
    assert exact["nme_pct"] == pytest.approx(0.0, abs=1e-9)
    assert exact["missed"] == 0 and exact["scored_pose"] == 8
    off = evaluate_aflw2000(samples, Oracle(samples, d_yaw=10.0, landmark_shift=3.0), progress=False).metrics
    assert off["yaw_deg"] == pytest.approx(10.0) and off["pitch_deg"] == pytest.approx(0.0)
    assert off["mae_deg"] == pytest.approx(10.0 / 3)
    expected_nme = np.mean(
        [3 * math.sqrt(2) / math.sqrt((s.box[2] - s.box[0]) * (s.box[3] - s.box[1])) * 100 for s in samples]
    )
    assert off["nme_pct"] == pytest.approx(expected_nme)


def test_large_angle_rule():
    from vggheads.evaluation.angles import paper_large_angle_rule, wrapped_error

    assert paper_large_angle_rule(140.0, 0.0, 0.0) == (0.0, 0.0, 0.0)
    assert paper_large_angle_rule(130.0, 1.0, 2.0) == (130.0, 1.0, 2.0)
    assert wrapped_error(179.0, -179.0) == pytest.approx(2.0)
    assert wrapped_error(-90.0, 90.0) == pytest.approx(180.0)
