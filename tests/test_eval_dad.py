"""DAD-3DHeads: both ground-truth layouts and the four official metrics on constructed heads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from vggheads.errors import InputError
from vggheads.evaluation.dad3dheads import HeadTopology, evaluate_dad3dheads, read_dad3dheads, score_item
from vggheads.evaluation.types import HeadPrediction

W, H = 640, 480
V = 120
TOPOLOGY = HeadTopology(landmarks=lambda v: np.asarray(v)[:68], head_indices=np.arange(V), face_indices=np.arange(80))


def _entry(item_id: str, yaw: float):
    rng = np.random.default_rng([ord(c) for c in item_id])
    vertices = rng.normal(0, 0.08, (V, 3))
    mv = np.eye(4)
    mv[:3, :3] = Rotation.from_euler("y", yaw, degrees=True).as_matrix()
    mv[:3, 3] = [0.0, 0.0, -1.0]  # OpenGL camera: the head 1 m in front
    f, cx, cy = 500.0, W / 2, H / 2
    proj = np.array([[f, 0, -cx, 0], [0, f, -cy, 0], [0, 0, -1, 0], [0, 0, -1, 0]], dtype=float)
    return {
        "id": item_id,
        "bbox": [220, 140, 200, 200],
        "vertices": vertices.tolist(),
        "model_view_matrix": mv.tolist(),
        "projection_matrix": proj.tolist(),
        "image_height": H,
    }


def _oracle(item, topology=TOPOLOGY, rotate_deg=0.0, shift=0.0, scale=700.0):
    world = item.world_vertices()
    vertices = scale * world @ np.diag([1.0, -1.0, -1.0]) + [W / 2, H / 2, 0.0]  # a similarity: z = depth
    R = Rotation.from_euler("z", rotate_deg, degrees=True).as_matrix() @ item.rotation()
    return HeadPrediction(
        box=[220, 140, 420, 340],
        score=0.9,
        landmarks=item.landmarks_2d(topology) + shift,
        rotation=R,
        vertices=vertices,
        landmarks_3d=topology.landmarks(vertices),
    )


@pytest.fixture
def gt_file(tmp_path):
    entries = [_entry("a", 20.0), _entry("b", -35.0)]
    path = tmp_path / "ground_truth_val.json"
    path.write_text(json.dumps(entries))
    (tmp_path / "images").mkdir()
    for i, e in enumerate(entries):
        Image.new("RGB", (W, H), (i * 50, 0, 0)).save(tmp_path / "images" / f"{e['id']}.png")
    return path


def test_exact_prediction_scores_perfectly(gt_file):
    item = read_dad3dheads(gt_file)[0]
    scores = score_item(item, _oracle(item), TOPOLOGY)
    assert scores["nme_pct"] == pytest.approx(0.0, abs=1e-9)
    assert scores["pose_error"] == pytest.approx(0.0, abs=1e-6)
    assert scores["z5"] == pytest.approx(1.0)
    assert scores["chamfer"] == pytest.approx(0.0, abs=1e-9)
    # the GT rotation is the paper's R: diag(1,-1,-1) times the OpenGL model-view rotation
    np.testing.assert_allclose(item.rotation(), np.diag([1, -1, -1]) @ item.model_view[:3, :3])


def test_known_errors(gt_file):
    item = read_dad3dheads(gt_file)[0]
    s = score_item(item, _oracle(item, rotate_deg=90.0, shift=np.array([3.0, 4.0])), TOPOLOGY)
    assert s["pose_error"] == pytest.approx(2.0)  # ||I - Rz(90)||_F
    assert s["nme_pct"] == pytest.approx(5.0 / 200.0 * 100.0)  # 5 px over sqrt(200 * 200)
    # Procrustes with scale: a prediction at another scale has the same Chamfer
    assert score_item(item, _oracle(item, scale=300.0), TOPOLOGY)["chamfer"] == pytest.approx(0.0, abs=1e-9)
    bent = _oracle(item)
    bent.vertices = bent.vertices + np.random.default_rng(0).normal(0, 3.0, bent.vertices.shape)
    s2 = score_item(item, bent, TOPOLOGY)
    assert s2["chamfer"] > 0.01 and s2["z5"] < 1.0


def test_evaluate_picks_the_overlapping_head(gt_file):
    items = read_dad3dheads(gt_file)
    by_red = {i * 50: it for i, it in enumerate(items)}

    def predictor(image):
        it = by_red[int(image[0, 0, 0])]
        decoy = HeadPrediction(box=[0, 0, 50, 50], score=0.99, rotation=np.eye(3))
        return [decoy, _oracle(it)]

    result = evaluate_dad3dheads(items, predictor, TOPOLOGY, progress=False)
    assert result.metrics["images"] == 2 and result.metrics["missed"] == 0
    assert result.metrics["pose_error"] == pytest.approx(0.0, abs=1e-6)
    assert result.metrics["nme_pct"] == pytest.approx(0.0, abs=1e-9)


def test_dataset_folder_layout_and_errors(tmp_path):
    folder = tmp_path / "DAD-3DHeadsDataset" / "val"
    (folder / "annotations").mkdir(parents=True)
    e = _entry("x1", 10.0)
    (folder / "val.json").write_text(
        json.dumps([{"item_id": "x1", "bbox": e["bbox"], "attributes": {"light": "normal"}}])
    )
    (folder / "annotations" / "x1.json").write_text(
        json.dumps({k: e[k] for k in ("vertices", "model_view_matrix", "projection_matrix")})
    )
    items = read_dad3dheads(tmp_path / "DAD-3DHeadsDataset", "val")
    assert items[0].id == "x1" and items[0].attributes == {"light": "normal"} and items[0].image_path is None
    with pytest.raises(InputError, match="image height unknown"):
        items[0].landmarks_2d(TOPOLOGY)
    (folder / "annotations" / "x1.json").write_text(json.dumps({"vertices": e["vertices"]}))
    with pytest.raises(InputError, match=r"x1.json.*'model_view_matrix'"):
        read_dad3dheads(tmp_path / "DAD-3DHeadsDataset", "val")
    bad = tmp_path / "gt.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_dad3dheads(bad)
