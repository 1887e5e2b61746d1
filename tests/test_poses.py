"""Stage extract_poses: procedural skeletons, the OpenPose condition drawing, the YOLO-pose backend."""

import copy
import json

import numpy as np
import pytest
from PIL import Image

from vggheads.errors import ConfigError, MissingWeightsError
from vggheads.poses.openpose import COLORS, coco_to_openpose, draw_openpose
from vggheads.poses.procedural import sample_scene
from vggheads.schemas import from_rows, read_table, write_table
from vggheads.stages.extract_poses import ExtractPosesJob, extract_poses


@pytest.fixture
def cfg(params):
    p = copy.deepcopy(params)
    p["tracking"]["enabled"] = False
    p["poses"]["width"], p["poses"]["height"] = 256, 192
    return p


def captions_file(tmp_path, captions):
    rows = [
        {
            "sample_id": f"00000_{i:06d}",
            "shard": "00000",
            "source_file": "x",
            "source_row": i,
            "url": f"https://example.org/{i}.jpg",
            "caption": c,
            "prompt": c,
            "negative_prompt": "",
            "seed": i,
        }
        for i, c in enumerate(captions)
    ]
    path = tmp_path / "captions.parquet"
    write_table(from_rows("captions", rows), path, "captions")
    return path


def test_openpose_mapping_neck_is_shoulder_midpoint():
    kp = np.zeros((17, 3), np.float32)
    kp[5] = (10, 20, 0.9)  # left shoulder
    kp[6] = (30, 24, 0.5)  # right shoulder
    kp[2] = (7, 8, 0.8)  # right eye
    op = coco_to_openpose(kp)
    assert np.allclose(op[1], (20, 22, 0.5))
    assert np.allclose(op[2], kp[6]) and np.allclose(op[5], kp[5]) and np.allclose(op[14], kp[2])


def test_limb_drawn_only_when_both_ends_are_confident():
    kp = np.zeros((17, 3), np.float32)
    kp[5], kp[7] = (40, 20, 0.9), (40, 80, 0.9)  # left shoulder -> left elbow: confident
    kp[6], kp[8] = (90, 20, 0.9), (90, 80, 0.2)  # right shoulder -> right elbow: elbow below 0.3
    img = draw_openpose([kp], 128, 100, min_confidence=0.3, stickwidth=3)
    assert img[50, 40].any(), "confident limb missing"
    assert not img[50, 90].any(), "limb drawn to a keypoint under the confidence threshold"
    # Keypoints are drawn in OpenPose colours (left shoulder = OpenPose 5).
    assert tuple(img[20, 40]) == COLORS[5]


def test_procedural_scene_is_deterministic_and_in_canvas():
    a = sample_scene(3, 320, 240, np.random.default_rng(7))
    b = sample_scene(3, 320, 240, np.random.default_rng(7))
    assert len(a) == len(b) >= 1
    for p, q in zip(a, b):
        assert np.array_equal(p.keypoints, q.keypoints)
        inside = p.keypoints[p.keypoints[:, 2] > 0]
        assert (inside[:, 0] >= 0).all() and (inside[:, 0] < 320).all() and (inside[:, 1] < 240).all()
        assert p.keypoints[0, 2] > 0  # every person's head is in the frame
    c = sample_scene(3, 320, 240, np.random.default_rng(8))
    assert not np.array_equal(a[0].keypoints, c[0].keypoints)


def test_profiles_hide_the_far_ear():
    hidden = 0
    for seed in range(200):
        for p in sample_scene(1, 256, 256, np.random.default_rng(seed)):
            if abs(p.head_yaw) > 60:
                hidden += min(p.keypoints[3, 2], p.keypoints[4, 2]) < 0.3
    assert hidden > 0


def test_stage_procedural(cfg, tmp_path):
    caps = captions_file(tmp_path, ["two men talking", "a woman smiling", "three students walking", "a crowd"])
    out, cond, stats = tmp_path / "p.parquet", tmp_path / "cond", tmp_path / "s.json"
    s = extract_poses(cfg, ExtractPosesJob(shard="00000", captions=caps, out=out, conditions=cond, stats=stats))
    table = read_table(out, "poses").to_pandas()
    per_sample = table.groupby("sample_id").size()
    assert per_sample["00000_000000"] == 2 and per_sample["00000_000001"] == 1 and per_sample["00000_000002"] == 3
    assert s["persons"] == len(table) and json.loads(stats.read_text())["samples"] == 4
    for sid in per_sample.index:
        img = np.asarray(Image.open(cond / f"{sid}.png"))
        assert img.shape == (192, 256, 3) and img.any()
    first = out.read_bytes()
    extract_poses(cfg, ExtractPosesJob(shard="00000", captions=caps, out=out, conditions=cond, stats=stats))
    assert out.read_bytes() == first


def test_ultralytics_backend_needs_images_and_weights(cfg, tmp_path):
    caps = captions_file(tmp_path, ["a man"])
    cfg["poses"]["backend"] = "ultralytics"
    for images in (None, "downloaded"):  # "downloaded": the pipeline passes the shard's photos as --images
        cfg["poses"]["ultralytics"]["images"] = images
        with pytest.raises(ConfigError, match="no images are given: poses.ultralytics.images"):
            extract_poses(
                cfg,
                ExtractPosesJob(
                    shard="00000",
                    captions=caps,
                    out=tmp_path / "p.parquet",
                    conditions=tmp_path / "c",
                    stats=tmp_path / "s.json",
                ),
            )
    cfg["poses"]["ultralytics"]["images"] = str(tmp_path)
    cfg["poses"]["ultralytics"]["weights"] = str(tmp_path / "yolo11x-pose.pt")
    with pytest.raises(
        MissingWeightsError, match=r"YOLO-pose weights .* not found at '.*yolo11x-pose.pt'.*nothing is downloaded"
    ):
        extract_poses(
            cfg,
            ExtractPosesJob(
                shard="00000",
                captions=caps,
                out=tmp_path / "p.parquet",
                conditions=tmp_path / "c",
                stats=tmp_path / "s.json",
            ),
        )
    assert not (tmp_path / "p.parquet").exists() and not (tmp_path / "c").exists()


def test_ultralytics_backend_on_img2dataset_folder(cfg, tmp_path):
    """The real YOLO-pose code path, with a pose model built from its yaml (random weights)."""
    from vggheads.offline import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    weights = tmp_path / "pose.pt"
    YOLO("yolo11n-pose.yaml").save(str(weights))
    caps = captions_file(tmp_path, ["a man", "a woman", "a child"])
    images = tmp_path / "img2dataset" / "00000"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for key, i in (("000000001", 0), ("000000002", 1)):  # sample 2 has no image
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(images / f"{key}.jpg")
        (images / f"{key}.json").write_text(json.dumps({"url": f"https://example.org/{i}.jpg", "key": key}))
    (images / "000000003.jpg").write_bytes(b"corrupt")
    (images / "000000003.json").write_text(json.dumps({"url": "https://example.org/2.jpg"}))
    cfg["poses"]["backend"] = "ultralytics"
    cfg["poses"]["ultralytics"].update(images=str(tmp_path / "img2dataset"), weights=str(weights), conf=0.0, imgsz=64)
    s = extract_poses(
        cfg,
        ExtractPosesJob(
            shard="00000",
            captions=caps,
            out=tmp_path / "p.parquet",
            conditions=tmp_path / "c",
            stats=tmp_path / "s.json",
        ),
    )
    assert s["dropped"]["missing_or_corrupt_image"] == 1
    table = read_table(tmp_path / "p.parquet", "poses").to_pandas()
    assert set(table.sample_id) <= {"00000_000000", "00000_000001"}
    if len(table):  # random weights: whatever it finds lands on the 64-short-side canvas
        assert (table.height == 64).all() and (table.width == round(160 * 64 / 120)).all()
        assert (table.backend == "ultralytics").all()


def test_turned_head_hides_the_ear_on_the_side_it_turns_to():
    """A face turned to the person's left (image right for a person facing us) hides the left ear."""
    checked = 0
    for seed in range(300):
        for p in sample_scene(1, 256, 256, np.random.default_rng(seed)):
            if p.keypoints[:, 2].min() == 0:
                continue  # keypoints outside the canvas
            nose, lear, rear = p.keypoints[0], p.keypoints[3], p.keypoints[4]
            if lear[2] < 0.3 <= rear[2]:
                # the visible right ear and the nose: the nose is turned towards the hidden (left, +x) side
                assert nose[0] > rear[0]
                checked += 1
            elif rear[2] < 0.3 <= lear[2]:
                assert nose[0] < lear[0]
                checked += 1
    assert checked > 10


def test_ultralytics_backend_reads_download_shards_and_drops_photos_without_people(cfg, tmp_path):
    """Photos from a download_images shard; max_det caps persons; photos without a person are counted."""
    import io
    import tarfile

    from vggheads.offline import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    weights = tmp_path / "pose.pt"
    YOLO("yolo11n-pose.yaml").save(str(weights))
    caps = captions_file(tmp_path, ["a man", "a woman", "a child"])
    rng = np.random.default_rng(1)
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        for i in range(3):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(buf, "JPEG")
            meta = json.dumps({"url": f"https://example.org/{i}.jpg", "sample_id": f"00000_{i:06d}"}).encode()
            for name, data in ((f"{i:06d}.jpg", buf.getvalue()), (f"{i:06d}.json", meta)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    cfg["poses"]["backend"] = "ultralytics"
    cfg["poses"]["ultralytics"].update(images="downloaded", weights=str(weights), conf=0.0, imgsz=64, max_det=2)
    s = extract_poses(
        cfg,
        ExtractPosesJob(
            shard="00000",
            captions=caps,
            out=tmp_path / "p.parquet",
            conditions=tmp_path / "c",
            stats=tmp_path / "s.json",
            images=str(tmp_path / "00000.tar"),
        ),
    )
    table = read_table(tmp_path / "p.parquet", "poses").to_pandas()
    assert s["dropped"]["missing_or_corrupt_image"] == 0
    assert table.groupby("sample_id").size().max() <= 2  # max_det
    # A confidence no random-weight detection reaches: every photo is dropped as having no person, counted.
    cfg["poses"]["ultralytics"]["conf"] = 1.0
    s = extract_poses(
        cfg,
        ExtractPosesJob(
            shard="00000",
            captions=caps,
            out=tmp_path / "p.parquet",
            conditions=tmp_path / "c",
            stats=tmp_path / "s.json",
            images=str(tmp_path / "00000.tar"),
        ),
    )
    assert s["samples"] == 0 and s["dropped"]["no_person"] == 3
    assert read_table(tmp_path / "p.parquet", "poses").num_rows == 0
