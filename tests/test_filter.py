"""Filtering: the paper's four rules, the face detectors shipped in packages, stage filter."""

import json

import numpy as np
import pytest

from vggheads.detection.infer import Detections
from vggheads.filtering.rules import (
    check_image,
    faces_without_head,
    flip_boxes,
    flip_stability,
    split_is_valid,
    vertical_split,
)

ALL = {"no_heads": True, "flip": True, "face": True, "split": True}


class MarkerDetector:
    """A detector that finds one head per red square (R=255, G=B=0): it sees what it is given, so a
    rule that forgets to flip or crop the image counts the same heads."""

    def __init__(self):
        self.calls = []

    def __call__(self, images):
        self.calls.append([im.shape for im in images])
        out = []
        for im in images:
            from scipy import ndimage

            mask = (im[..., 0] == 255) & (im[..., 1] == 0) & (im[..., 2] == 0)
            lab, n = ndimage.label(mask)
            boxes = [[sl[1].start, sl[0].start, sl[1].stop, sl[0].stop] for sl in ndimage.find_objects(lab)]
            out.append(Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.ones(n, np.float32)))
        return out


def _image(squares, size=(100, 200)):
    im = np.zeros((*size, 3), dtype=np.uint8)
    for x1, y1, x2, y2 in squares:
        im[y1:y2, x1:x2] = (255, 0, 0)
    return im


def no_faces(image):
    return np.zeros((0, 4))


def test_vertical_split_is_the_papers_search():
    assert vertical_split(200, np.array([[10, 10, 50, 50]])) == 100
    assert vertical_split(200, np.array([[90, 0, 110, 10]])) == 90  # equally near: the left one first
    assert vertical_split(200, np.array([[90, 0, 105, 10]])) == 105  # the nearest free column wins
    assert vertical_split(200, np.array([[90, 0, 130, 10], [60, 0, 92, 10]])) == 130  # 60..130 cut: right is nearer
    assert vertical_split(20, np.array([[0, 0, 20, 5]])) in (0, 20)
    assert vertical_split(20, np.array([[-1, 0, 21, 5]])) is None
    assert split_is_valid(200, 100, np.array([[10, 0, 50, 9], [150, 0, 190, 9]]), 100)
    assert not split_is_valid(200, 100, np.array([[10, 0, 50, 9]]), 100)  # heads on one side only
    assert not split_is_valid(200, 100, np.array([[1, 0, 4, 9], [150, 0, 190, 9]]), 5)  # a half under 10 px


def test_flip_helpers():
    np.testing.assert_allclose(flip_boxes(np.array([[10, 5, 30, 25]]), 100), [[70, 5, 90, 25]])
    b = np.array([[10, 10, 20, 20], [50, 50, 60, 60]])
    assert flip_stability(b, b) == pytest.approx(1.0)
    assert flip_stability(b, b[:1]) == pytest.approx(0.5)
    assert np.isnan(flip_stability(np.zeros((0, 4)), b))


def test_faces_must_overlap_a_head():
    heads = np.array([[0, 0, 10, 10]])
    assert faces_without_head(np.array([[5, 5, 8, 8]]), heads) == 0
    assert faces_without_head(np.array([[10, 10, 12, 12]]), heads) == 1  # touching is not overlapping
    assert faces_without_head(np.array([[5, 5, 8, 8], [50, 50, 60, 60]]), np.zeros((0, 4))) == 2


def test_no_heads_rule():
    det = MarkerDetector()
    r = check_image(_image([]), np.zeros((0, 4)), det, no_faces, ALL)
    assert (r.keep, r.reason) == (False, "no_heads")
    assert check_image(_image([]), np.zeros((0, 4)), det, no_faces, {**ALL, "no_heads": False}).keep


def test_flip_rule_really_flips_the_image():
    """A detector that misses heads on the right half: the flipped image shows them on the left."""

    class LeftOnly(MarkerDetector):
        def __call__(self, images):
            return super().__call__(
                [
                    np.where(np.arange(im.shape[1])[None, :, None] < im.shape[1] // 2, im, 0).astype(np.uint8)
                    for im in images
                ]
            )

    image = _image([(10, 10, 30, 30), (150, 10, 170, 30), (120, 60, 140, 80)])
    det = LeftOnly()
    boxes = det([image])[0].boxes  # 1 head seen on the original
    r = check_image(image, boxes, det, no_faces, ALL)
    assert (r.keep, r.reason) == (False, "flip_count") and r.details["n_heads_flipped"] == 2
    # the full detector is symmetric: same count after flipping, and the boxes map back exactly
    full = MarkerDetector()
    r = check_image(image, full([image])[0].boxes, full, no_faces, {**ALL, "split": False})
    assert r.keep and r.stability == pytest.approx(1.0)


def test_face_rule():
    image = _image([(10, 10, 30, 30)])
    boxes = np.array([[10, 10, 30, 30]])
    r = check_image(image, boxes, MarkerDetector(), lambda im: np.array([[100, 50, 120, 70]]), ALL)
    assert (r.keep, r.reason) == (False, "face_without_head")
    assert check_image(image, boxes, MarkerDetector(), lambda im: np.array([[12, 12, 20, 20]]), ALL).keep
    assert check_image(
        image, boxes, MarkerDetector(), lambda im: np.array([[100, 50, 120, 70]]), {**ALL, "face": False}
    ).keep


def test_split_rule_detects_on_each_half():
    """A head on the border of a half vanishes when the halves are detected separately (a detector
    that ignores objects touching the image border)."""

    class NoBorder(MarkerDetector):
        def __call__(self, images):
            out = []
            for im, found in zip(images, super().__call__(images)):
                ok = (found.boxes[:, 0] > 0) & (found.boxes[:, 2] < im.shape[1])
                out.append(Detections(found.boxes[ok], found.scores[ok]))
            return out

    image = _image([(10, 10, 30, 30), (150, 10, 170, 30), (100, 60, 110, 70)])
    det = NoBorder()
    boxes = det([image])[0].boxes
    assert vertical_split(200, boxes) == 100
    r = check_image(image, boxes, det, no_faces, ALL)
    assert (r.keep, r.reason) == (False, "split_count") and r.details["n_heads_split"] == 2
    assert [s[1] for s in det.calls[-1]] == [100, 100]  # the two halves
    assert check_image(image, boxes, det, no_faces, {**ALL, "split": False}).keep


def test_face_detectors_from_packages_find_a_real_face(shared_data):
    from PIL import Image

    from vggheads.filtering.faces import FaceDetector

    image = np.array(Image.open(shared_data / "benchmarks" / "aflw2000_sample" / "image00050.jpg").convert("RGB"))
    for kind in ("mtcnn", "dlib-hog"):
        faces = FaceDetector(kind, min_score=0.9)(image)
        assert len(faces) >= 1, kind
        x1, y1, x2, y2 = faces[0]
        assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]
    assert len(FaceDetector("mtcnn")(np.zeros((120, 120, 3), np.uint8))) == 0


def test_unknown_face_detector_is_a_config_error():
    from vggheads.errors import ConfigError
    from vggheads.filtering.faces import FaceDetector

    with pytest.raises(ConfigError, match="retinaface"):
        FaceDetector("retinaface")


def test_filter_stage(tmp_path, params, monkeypatch):
    """Stage plumbing with the marker detector: reasons per image, counts, yield, unreadable images."""
    from PIL import Image

    import vggheads.detection.infer as infer
    from vggheads.schemas import from_rows, read_table, write_table
    from vggheads.stages.filter import FilterJob, filter_shard

    monkeypatch.setattr(infer.HeadBoxDetector, "from_params", classmethod(lambda cls, w, cfg: MarkerDetector()))
    images = tmp_path / "00000"
    images.mkdir()
    scenes = {"keep": [(10, 10, 30, 30), (150, 10, 170, 30)], "none": [], "broken": [(10, 10, 30, 30)]}
    rows, dets = [], []
    for sid, squares in scenes.items():
        Image.fromarray(_image(squares)).save(images / f"{sid}.png")
        rows.append(
            {
                "sample_id": sid,
                "image": f"{sid}.png",
                "width": 200,
                "height": 100,
                "backend": "procedural",
                "seed": 0,
                "prompt": "",
                "negative_prompt": "",
                "base_model": "",
                "condition_model": "",
                "seconds": 0.0,
            }
        )
        dets += [{"sample_id": sid, "head": k, "box": b, "score": 1.0} for k, b in enumerate(squares)]
    (images / "broken.png").write_bytes(b"\x89PNG\r\n")
    write_table(from_rows("render", rows), tmp_path / "00000.parquet", "render")
    write_table(from_rows("detections", dets), tmp_path / "det.parquet", "detections")
    params["tracking"]["enabled"] = False
    params["filter"]["face"] = False
    stats = filter_shard(
        params,
        FilterJob(
            shard="00000",
            render_table=tmp_path / "00000.parquet",
            images=images,
            detections=tmp_path / "det.parquet",
            weights=tmp_path / "none.pt",
            out=tmp_path / "filter.parquet",
            stats=tmp_path / "filter.stats.json",
        ),
    )
    table = {r["sample_id"]: r for r in read_table(tmp_path / "filter.parquet", "filter").to_pylist()}
    assert table["keep"]["keep"] and table["keep"]["reason"] == "" and table["keep"]["stability"] == pytest.approx(1.0)
    assert table["none"]["reason"] == "no_heads" and table["broken"]["reason"] == "unreadable"
    assert stats["kept"] == 1 and stats["yield"] == pytest.approx(1 / 3, abs=1e-4)
    assert stats["reasons"]["no_heads"] == 1 and stats["reasons"]["unreadable"] == 1
    assert json.loads((tmp_path / "filter.stats.json").read_text())["kept"] == 1
