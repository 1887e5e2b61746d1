"""Head detection: the labelled subset (procedural truth, COCO json), YOLO dataset, training,
inference with the paper's plain resize and thresholds, and the train_head_detector/detect_heads stages."""

import json
from pathlib import Path

import numpy as np
import pytest

from vggheads.detection.data import (
    LabelledImage,
    coco_subset,
    in_labelled_subset,
    read_coco,
    write_yolo_dataset,
    yolo_label_lines,
)
from vggheads.errors import InputError, MissingWeightsError


@pytest.fixture(scope="session")
def head_model(head_model_file):
    """These tests take the head model as a file."""
    return head_model_file


def _blob_images(tmp_path, n=8, size=96, seed=0):
    """Images with bright ellipses ("heads") on a noisy background, and their boxes."""
    import cv2

    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        im = (rng.random((size, size, 3)) * 60 + 60).astype(np.uint8)
        boxes = []
        for _ in range(int(rng.integers(1, 3))):
            cx, cy, r = rng.uniform(20, size - 20), rng.uniform(20, size - 20), rng.uniform(8, 14)
            cv2.ellipse(im, (int(cx), int(cy)), (int(r), int(r * 1.2)), 0, 0, 360, (230, 190, 150), -1)
            boxes.append([cx - r, cy - 1.2 * r, cx + r, cy + 1.2 * r])
        path = tmp_path / f"im{i}.png"
        cv2.imwrite(str(path), im)
        items.append(LabelledImage(f"im{i}", path, size, size, np.array(boxes)))
    return items


def test_labelled_subset_is_a_stable_hash_share():
    ids = [f"00000_{i:06d}" for i in range(2000)]
    chosen = [i for i in ids if in_labelled_subset(i, 0.3, seed=1)]
    assert 0.25 < len(chosen) / len(ids) < 0.35
    assert chosen == [i for i in ids if in_labelled_subset(i, 0.3, seed=1)]
    assert chosen != [i for i in ids if in_labelled_subset(i, 0.3, seed=2)]
    assert not any(in_labelled_subset(i, 0.0) for i in ids) and all(in_labelled_subset(i, 1.0) for i in ids)


def test_yolo_labels_are_normalised_and_clipped(tmp_path):
    item = LabelledImage(
        "a", tmp_path / "a.png", 200, 100, np.array([[10, 20, 50, 60], [-20, 50, 20, 150], [300, 0, 310, 10]])
    )
    lines = yolo_label_lines(item)
    assert lines[0] == "0 0.150000 0.400000 0.200000 0.400000"
    assert lines[1] == "0 0.050000 0.750000 0.100000 0.500000"  # clipped to x in [0, 20], y in [50, 100]
    assert len(lines) == 2  # the box outside the image is gone


def test_yolo_dataset_layout(tmp_path):
    items = _blob_images(tmp_path / "src", n=3)
    data = write_yolo_dataset(items[:2], [], tmp_path / "ds")
    import yaml

    doc = yaml.safe_load(data.read_text())
    assert doc["names"] == {0: "head"} and doc["val"] == "images/val"
    train = sorted((tmp_path / "ds" / "images" / "train").iterdir())
    assert len(train) == 2 and len(list((tmp_path / "ds" / "images" / "val").iterdir())) == 2  # val = train
    label = (tmp_path / "ds" / "labels" / "train" / (train[0].stem + ".txt")).read_text().split("\n")[0].split()
    assert label[0] == "0" and len(label) == 5
    with pytest.raises(InputError, match="labelled subset is empty"):
        write_yolo_dataset([], [], tmp_path / "empty")


def test_coco_json_as_labelbox_exports_it(tmp_path):
    (tmp_path / "imgs").mkdir()
    from PIL import Image

    Image.new("RGB", (64, 48)).save(tmp_path / "imgs" / "b.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}, {"id": 2, "file_name": "b.png"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5]},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4]},
        ],
        "categories": [{"id": 1, "name": "head"}, {"id": 2, "name": "face"}],
    }
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    items = {i.image_id: i for i in read_coco(path, tmp_path / "imgs", category="head")}
    np.testing.assert_allclose(items["1"].boxes, [[10, 20, 40, 60]])
    assert (items["2"].width, items["2"].height) == (64, 48)  # size read from the file when missing
    assert len(read_coco(path, tmp_path / "imgs")[0].boxes) == 2  # no category filter: every box is a head
    train, val = coco_subset(path, tmp_path / "imgs", val_fraction=0.5, category="head")
    assert len(train) + len(val) == 2
    with pytest.raises(InputError, match="no category named 'person'"):
        read_coco(path, tmp_path / "imgs", category="person")
    with pytest.raises(InputError, match="not found"):
        read_coco(tmp_path / "missing.json", tmp_path)


def test_score_detections_counts_one_to_one_matches():
    from vggheads.detection.train import score_detections

    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.zeros((0, 4))]
    pred = [np.array([[0, 0, 10, 11], [1, 0, 10, 10], [50, 50, 60, 60]]), np.array([[0, 0, 5, 5]])]
    m = score_detections(gt, pred, [np.array([0.9, 0.8, 0.7]), np.array([0.6])])
    assert (m["heads"], m["detections"], m["true_positives"]) == (2, 4, 1)
    assert m["recall"] == 0.5 and m["precision"] == 0.25


class _FakeBoxes:
    def __init__(self, xyxy, conf):
        import torch

        self.xyxy, self.conf = torch.tensor(xyxy, dtype=torch.float32), torch.tensor(conf, dtype=torch.float32)


class _FakeModel:
    """Stands in for an ultralytics model: records its inputs, returns fixed boxes in input pixels."""

    def __init__(self, xyxy, conf):
        self.xyxy, self.conf, self.inputs = xyxy, conf, []

    def predict(self, images, **kwargs):
        self.inputs += images
        return [type("R", (), {"boxes": _FakeBoxes(self.xyxy, self.conf)})() for _ in images]


def _detector(model, **kw):
    from vggheads.detection.infer import HeadBoxDetector

    det = HeadBoxDetector.__new__(HeadBoxDetector)
    det.model, det.imgsz, det.score_threshold, det.nms_iou = model, 64, 0.5, 0.5
    det.max_detections, det.resize, det.device, det.batch_size = 100, "plain", "cpu", 4
    det.__dict__.update(kw)
    return det


def test_plain_resize_maps_boxes_back_and_applies_thresholds():
    model = _FakeModel([[8, 16, 24, 32], [8, 16, 24, 33], [0, 0, 4, 4]], [0.9, 0.8, 0.4])
    det = _detector(model)
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[:, :100, 0] = 255  # red left half, to check RGB -> BGR
    found = det([image])[0]
    assert model.inputs[0].shape == (64, 64, 3)  # a plain resize, no letterbox
    assert model.inputs[0][0, 0, 2] == 255 and model.inputs[0][0, 0, 0] == 0  # ultralytics gets BGR
    # one box: the 0.4 one is under the threshold, the overlapping 0.8 one goes by NMS at 0.5
    np.testing.assert_allclose(found.boxes, [[25, 25, 75, 50]])  # x * 200/64, y * 100/64
    np.testing.assert_allclose(found.scores, [0.9], rtol=1e-6)


def test_missing_or_broken_weights_say_what_to_do(tmp_path):
    from vggheads.detection.infer import HeadBoxDetector

    with pytest.raises(MissingWeightsError, match="train-head-detector"):
        HeadBoxDetector(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable ultralytics checkpoint"):
        HeadBoxDetector(bad)


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory):
    """A YOLO detector trained one epoch on blob images (shape and plumbing, not quality)."""
    from vggheads.detection.train import train_detector

    root = tmp_path_factory.mktemp("tinydet")
    items = _blob_images(root, n=8, size=64)
    cfg = {
        "architecture": "yolo11n.yaml",
        "epochs": 1,
        "imgsz": 64,
        "batch": 4,
        "lr0": 0.01,
        "warmup_epochs": 0,
        "close_mosaic": 0,
        "patience": 10,
        "val_every_epoch": False,
        "device": "cpu",
    }
    out = root / "det.pt"
    result = train_detector(cfg, items[:6], items[6:], out, root / "work")
    return out, result, items


def test_training_writes_weights_and_curves_offline(tiny_detector, tmp_path):
    from vggheads.detection.infer import HeadBoxDetector

    weights, result, items = tiny_detector
    assert weights.exists() and weights.stat().st_size > 100_000
    assert result["curves"] and result["curves"][-1][0] == 1
    assert any(k.startswith("detector_train_") for k in result["curves"][-1][1])
    assert Path(result["save_dir"]).is_relative_to(weights.parent / "work")  # ultralytics' run dir, not ./runs
    det = HeadBoxDetector(weights, imgsz=64, score_threshold=0.0, device="cpu")
    from PIL import Image

    found = det([np.array(Image.open(items[0].path).convert("RGB")), np.zeros((30, 50, 3), dtype=np.uint8)])
    assert len(found) == 2
    for f, (h, w) in zip(found, [(64, 64), (30, 50)]):
        assert f.boxes.shape[1] == 4 and len(f.boxes) == len(f.scores)
        assert (f.boxes[:, 0] >= 0).all() and (f.boxes[:, 2] <= w).all() and (f.boxes[:, 3] <= h).all()


def test_detect_heads_stage_counts_unreadable_images(tiny_detector, tmp_path, params):
    from vggheads.schemas import from_rows, read_table, write_table
    from vggheads.stages.detect_heads import DetectHeadsJob, detect_heads

    weights, _, items = tiny_detector
    images = tmp_path / "00000"
    images.mkdir()
    rows = []
    for i, item in enumerate(items[:3]):
        (images / f"s{i}.png").write_bytes(item.path.read_bytes())
        rows.append(
            {
                "sample_id": f"s{i}",
                "image": f"s{i}.png",
                "width": 64,
                "height": 64,
                "backend": "procedural",
                "seed": i,
                "prompt": "",
                "negative_prompt": "",
                "base_model": "",
                "condition_model": "",
                "seconds": 0.0,
            }
        )
    (images / "s1.png").write_bytes(b"\x89PNG truncated")
    write_table(from_rows("render", rows), tmp_path / "00000.parquet", "render")
    params["detector"].update(imgsz=64, score_threshold=0.01, device="cpu")
    params["tracking"]["enabled"] = False
    stats = detect_heads(
        params,
        DetectHeadsJob(
            shard="00000",
            render_table=tmp_path / "00000.parquet",
            images=images,
            weights=weights,
            out=tmp_path / "det.parquet",
            stats=tmp_path / "det.stats.json",
        ),
    )
    assert stats["unreadable"] == 1 and stats["unreadable_ids"] == ["s1"] and stats["images"] == 3
    table = read_table(tmp_path / "det.parquet", "detections")
    assert table.num_rows == stats["heads"]
    assert set(table["sample_id"].to_pylist()) <= {"s0", "s2"}
    assert json.loads((tmp_path / "det.stats.json").read_text())["heads"] == stats["heads"]


@pytest.mark.slow
def test_train_head_detector_stage_on_procedural_renders(head_model, tmp_path, params):
    """The stage end to end: extra procedural renders + a shard, training, held-out measurement."""
    from vggheads.detection.data import write_procedural_shard
    from vggheads.stages.train_head_detector import TrainHeadDetectorJob, train_head_detector

    table, _, _ = write_procedural_shard(
        head_model, "00000", 3, 96, 96, tmp_path / "render", seed=1, render_cfg={"supersample": 1}
    )
    params["poses"].update(width=96, height=96)
    params["render"].setdefault("procedural", {})["supersample"] = 1
    params["detector"].update(epochs=1, imgsz=64, batch=4, device="cpu", score_threshold=0.001)
    params["detector"]["labelled"].update(extra_images=6, shard_fraction=0.0, val_fraction=0.3)
    params["tracking"]["enabled"] = False
    metrics = train_head_detector(
        params,
        TrainHeadDetectorJob(
            render_tables=[table],
            head_model=head_model,
            out=tmp_path / "det.pt",
            metrics=tmp_path / "det.json",
            work_dir=tmp_path / "work",
        ),
    )
    assert (tmp_path / "det.pt").exists() and not (tmp_path / "work").exists()
    assert metrics["labelled"]["train_images"] + metrics["labelled"]["val_images"] == 6
    assert metrics["heldout"]["images"] == 3  # the shard's images were never trained on
    assert metrics["heldout"]["heads"] > 0
    assert json.loads((tmp_path / "det.json").read_text())["heldout"]["heads"] == metrics["heldout"]["heads"]


def test_oracle_detections_are_the_render_truth(tmp_path, params):
    from PIL import Image

    from vggheads.schemas import from_rows, read_table, write_table
    from vggheads.stages.detect_heads import DetectHeadsJob, detect_heads

    (tmp_path / "00000").mkdir()
    rows, heads = [], []
    for i in range(2):
        Image.new("RGB", (32, 32)).save(tmp_path / "00000" / f"s{i}.png")
        rows.append(
            {
                "sample_id": f"s{i}",
                "image": f"s{i}.png",
                "width": 32,
                "height": 32,
                "backend": "procedural",
                "seed": i,
                "prompt": "",
                "negative_prompt": "",
                "base_model": "",
                "condition_model": "",
                "seconds": 0.0,
            }
        )
    heads.append(
        {
            "sample_id": "s1",
            "head": 3,
            "box": [1, 2, 10, 12],
            "flame_params": np.zeros(413),
            "landmarks": np.zeros(204),
            "yaw": 0.0,
            "pitch": 0.0,
            "roll": 0.0,
            "visible_fraction": 1.0,
        }
    )
    write_table(from_rows("render", rows), tmp_path / "00000.parquet", "render")
    write_table(from_rows("render_heads", heads), tmp_path / "00000.heads.parquet", "render_heads")
    params["detector"]["oracle"] = True
    params["tracking"]["enabled"] = False
    stats = detect_heads(
        params,
        DetectHeadsJob(
            shard="00000",
            render_table=tmp_path / "00000.parquet",
            images=tmp_path / "00000",
            weights=tmp_path / "no.pt",
            out=tmp_path / "det.parquet",
            stats=tmp_path / "det.json",
            truth=tmp_path / "00000.heads.parquet",
        ),
    )
    det = read_table(tmp_path / "det.parquet", "detections").to_pylist()
    assert stats["oracle"] and stats["heads"] == 1 and stats["images_without_heads"] == 1
    assert det[0]["sample_id"] == "s1" and det[0]["box"] == [1, 2, 10, 12] and det[0]["score"] == 1.0
