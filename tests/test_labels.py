"""3DMM labels: crops, the truth / DAD-3DNet / landmark-fit labellers, label quality, stage label_3dmm."""

import json

import numpy as np
import pytest
import torch

from vggheads.errors import InputError, MissingWeightsError
from vggheads.labelling.crops import extend_box, extend_boxes
from vggheads.labelling.dad3dnet import OUTPUT_KEY, Dad3dNetLabeller, dad_to_image, image_to_release, preprocess


@pytest.fixture(scope="session")
def head_model(head_model_file):
    """These tests take the head model as a file."""
    return head_model_file


@pytest.fixture(scope="session")
def layer(head_model):
    from vggheads.geometry import FlameLayer
    from vggheads.headmodel import load_head_model

    return FlameLayer(load_head_model(head_model))


@pytest.fixture(scope="session")
def shard(head_model, tmp_path_factory):
    """A procedural shard laid out as the render stage writes it (4 images at 160 px)."""
    from vggheads.detection.data import write_procedural_shard

    out = tmp_path_factory.mktemp("render")
    return write_procedural_shard(head_model, "00000", 4, 160, 160, out, seed=3, render_cfg={"supersample": 1})


# ------------------------------------------------------------------ crops


def test_extended_crop_is_the_papers_extend_and_clip():
    # paper: extend_bbox([x, y, w, h], 0.25) -> int32 [x - w/4, y - h/4, 1.5 w, 1.5 h], then clipped
    np.testing.assert_array_equal(extend_box([40, 40, 80, 100], 0.25, 200, 200), [30, 25, 90, 115])
    np.testing.assert_array_equal(extend_box([0, 5, 40, 45], 0.25, 200, 200), [0, 0, 50, 55])  # clipped at 0
    np.testing.assert_array_equal(extend_box([170, 170, 199, 199], 0.25, 200, 200), [162, 162, 200, 200])
    np.testing.assert_array_equal(
        extend_box([10.7, 10.7, 20.7, 20.7], 0.25, 100, 100), [8, 8, 23, 23]
    )  # int32 truncation
    assert extend_boxes(np.zeros((0, 4)), 0.25, 10, 10).shape == (0, 4)


# ------------------------------------------------------------------ truth labeller


def test_truth_labeller_matches_by_iou_and_drops_false_positives(shard):
    from vggheads.labelling.truth import TruthLabeller, truth_by_sample
    from vggheads.schemas import read_table

    truth = truth_by_sample(read_table(shard[1], "render_heads"))
    sid, t = next((s, t) for s, t in truth.items() if len(t.boxes) >= 2)
    dets = np.concatenate([t.boxes[::-1] + 1.0, [[0, 0, 3, 3]]])  # reversed order, shifted, one false positive
    labels = TruthLabeller(truth)(None, sid, dets, dets)
    assert labels.ok.tolist() == [True] * len(t.boxes) + [False]
    assert labels.reasons[-1] == "no_truth_match"
    np.testing.assert_array_equal(labels.params[0], t.params[-1])
    np.testing.assert_array_equal(labels.landmarks[0], t.landmarks[-1])
    assert not TruthLabeller(truth)(None, "unknown", dets, dets).ok.any()


# ------------------------------------------------------------------ DAD-3DNet contract


class TinyDad(torch.nn.Module):
    """Same signature as dad_3dheads.trcd: (B, 3, 256, 256) -> {"OUTPUT_3DMM_PARAMS": (B, 413), heatmap}.

    Its parameters are fixed (a known head in DAD's normalised convention), except values 0:3 =
    the per-channel mean of the input and 3:6 = the input at the top-left corner, which let the test
    check the preprocessing."""

    def __init__(self, params):
        super().__init__()
        self.register_buffer("params", torch.as_tensor(params, dtype=torch.float32))

    def forward(self, x):
        B = x.shape[0]
        p = self.params.expand(B, 413).clone()
        p[:, 0:3] = x.mean(dim=(2, 3))
        p[:, 3:6] = x[:, :, 0, 0]
        return {OUTPUT_KEY: p, "OUTPUT_LANDMARKS_HEATMAP": torch.zeros(B, 68, 64, 64)}


def _dad_params():
    from vggheads.geometry import angles_to_matrix

    p = np.zeros(413, dtype=np.float32)
    R = angles_to_matrix(20.0, -10.0, 5.0)
    p[403:406], p[406:409] = R[:, 0], R[:, 1]
    p[409:412] = [0.1, -0.05, 0.3]  # DAD: translation in [-1, 1] units of the 256 canvas
    p[412] = 1.6  # DAD: (s + 1) scales the head to the canvas
    return p


@pytest.fixture
def tiny_dad(tmp_path):
    module = torch.jit.trace(TinyDad(_dad_params()), torch.zeros(1, 3, 256, 256), strict=False)
    path = tmp_path / "dad_3dheads.trcd"
    module.save(str(path))
    return path


def test_dad3dnet_preprocessing_is_longest_max_size_centred_pad_imagenet():
    crop = np.full((50, 100, 3), 255, dtype=np.uint8)
    x, k, top, left = preprocess(crop, 256)
    assert x.shape == (3, 256, 256) and x.dtype == np.float32
    assert k == pytest.approx(2.56) and (top, left) == (64, 0)  # 128 x 256 content, centred vertically
    white = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    black = (0.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(x[:, 128, 128], white, rtol=1e-5)
    np.testing.assert_allclose(x[:, 0, 0], black, rtol=1e-5)  # black padding, normalised like the image


def test_dad3dnet_contract_and_pixel_convention(tiny_dad, layer):
    """A traced module with DAD-3DNet's signature: the labeller's input is the preprocessed crop and
    its parameters, decoded with v_img = s R v + t, land where DAD's own formula puts them."""
    from vggheads.geometry import decode, rot6d_to_matrix

    labeller = Dad3dNetLabeller(tiny_dad, device="cpu")
    image = np.zeros((300, 400, 3), dtype=np.uint8)
    image[100:200, 150:230] = 200
    boxes = np.array([[170.0, 110.0, 210.0, 190.0], [0.0, 0.0, 1.0, 1.0]])
    ext = extend_boxes(boxes, 0.25, 400, 300)
    labels = labeller(image, "s", boxes, ext)
    assert labels.ok.tolist() == [True, False] and labels.reasons[1] == "empty_crop"
    expected_x, k, top, left = preprocess(image[int(ext[0, 1]) : int(ext[0, 3]), int(ext[0, 0]) : int(ext[0, 2])])
    np.testing.assert_allclose(labels.params[0, 0:3], expected_x.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(labels.params[0, 3:6], expected_x[:, 0, 0], rtol=1e-5)
    # DAD's formula on the 256 canvas, undone to the crop, moved to the image
    raw = torch.as_tensor(_dad_params())[None].clone()
    raw[0, 0:6] = torch.as_tensor(labels.params[0, 0:6])
    canon = layer(raw[:, :300], raw[:, 300:400], raw[:, 400:403])
    R = rot6d_to_matrix(raw[:, 403:409])
    s, t = raw[0, 412], raw[0, 409:412]
    v256 = ((s + 1) * canon[0] @ R[0].T + torch.stack([t[0], t[1], torch.tensor(0.0)]) + 1) / 2 * 256
    v_img = (v256[:, :2] - torch.tensor([left, top], dtype=torch.float32)) / k + torch.as_tensor(ext[0, :2])
    ours = decode(torch.as_tensor(labels.params[:1]), layer).vertices_image[0, :, :2]
    np.testing.assert_allclose(ours.numpy(), v_img.numpy(), atol=1e-3)


def test_release_convention_inverts_the_pixel_convention(layer):
    from vggheads.geometry import decode, rot6d_to_matrix

    params = _dad_params()[None].repeat(2, 0)
    ext = np.array([[10, 20, 110, 150], [0, 0, 64, 64]], dtype=np.float32)
    ours = dad_to_image(params, [1.0, 1.0], [0, 0], [0, 0], ext[:, 0], ext[:, 1])
    np.testing.assert_allclose(image_to_release(ours, ext), params, atol=1e-5)
    # the release formula: ((s + 1) R v + [tx, ty, 0] + 1) / 2 * 256 + extended_bbox[:2]
    p = torch.as_tensor(params)
    canon = layer(p[:, :300], p[:, 300:400], p[:, 400:403])
    R = rot6d_to_matrix(p[:, 403:409])
    rel = ((p[:, 412, None, None] + 1) * canon @ R.transpose(1, 2) + 1)[..., :2]
    rel = (rel + p[:, None, 409:411]) / 2 * 256 + torch.as_tensor(ext[:, None, :2])
    np.testing.assert_allclose(
        decode(torch.as_tensor(ours), layer).vertices_image[..., :2].numpy(), rel.numpy(), atol=1e-3
    )


def test_dad3dnet_bad_files_and_outputs(tmp_path):
    with pytest.raises(MissingWeightsError, match="dad_3dheads.trcd"):
        Dad3dNetLabeller(tmp_path / "missing.trcd")
    (tmp_path / "junk.trcd").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a loadable TorchScript"):
        Dad3dNetLabeller(tmp_path / "junk.trcd")

    class Wrong(torch.nn.Module):
        def forward(self, x):
            return {OUTPUT_KEY: x.mean(dim=(2, 3))}

    path = tmp_path / "wrong.trcd"
    torch.jit.trace(Wrong(), torch.zeros(1, 3, 256, 256), strict=False).save(str(path))
    with pytest.raises(InputError, match=r"shape \(1, 3\), expected \(1, 413\)"):
        Dad3dNetLabeller(path, device="cpu")(
            np.zeros((40, 40, 3), np.uint8), "s", np.array([[5.0, 5, 30, 30]]), np.array([[0.0, 0, 40, 40]])
        )


# ------------------------------------------------------------------ label quality


def test_quality_is_zero_for_exact_labels_and_sees_a_rotation(shard, layer):
    from vggheads.geometry import angles_to_matrix, matrix_to_rot6d, rot6d_to_matrix
    from vggheads.labelling.base import decode_labels
    from vggheads.labelling.quality import QualityAccumulator
    from vggheads.labelling.truth import truth_by_sample
    from vggheads.schemas import read_table

    truth = truth_by_sample(read_table(shard[1], "render_heads"))
    exact, turned, halves = QualityAccumulator(), QualityAccumulator(), [QualityAccumulator(), QualityAccumulator()]
    for i, (sid, t) in enumerate(truth.items()):
        dec = decode_labels(t.params, layer)
        exact.add(t, t.boxes, t.boxes, t.params, t.landmarks, t.angles)
        halves[i % 2].add(t, t.boxes, t.boxes, t.params, t.landmarks, t.angles)
        R = rot6d_to_matrix(torch.as_tensor(t.params[:, 403:409], dtype=torch.float64)).numpy()
        R10 = np.asarray(angles_to_matrix(10.0, 0.0, 0.0)) @ np.asarray(angles_to_matrix(0.0, 0.0, 0.0)).T
        p = t.params.copy()
        p[:, 403:409] = matrix_to_rot6d(torch.as_tensor(R10 @ R)).numpy()
        d2 = decode_labels(p, layer)
        turned.add(t, t.boxes, t.boxes[:1], p[:1], d2.landmarks[:1], np.stack([d2.yaw, d2.pitch, d2.roll], 1)[:1])
        np.testing.assert_allclose(dec.landmarks[..., :2], t.landmarks[..., :2], atol=0.05)
    m = exact.metrics()
    assert m["detection_recall"] == 1.0 and m["label_recall"] == 1.0
    assert m["nme_pct"] == pytest.approx(0.0, abs=1e-9) and m["geodesic_deg"] == pytest.approx(0.0, abs=1e-3)
    t = turned.metrics()
    assert t["geodesic_deg"] == pytest.approx(10.0, abs=0.05) and t["nme_pct"] > 1.0
    assert t["label_recall"] < 1.0 and t["label_precision"] == 1.0
    merged = QualityAccumulator.merge([h.state() for h in halves]).metrics()
    assert json.dumps(merged, sort_keys=True) == json.dumps(m, sort_keys=True)


# ------------------------------------------------------------------ landmark fit


def test_landmark_fit_labeller_gives_finite_parameters_near_the_head(shard, head_model):
    from vggheads.core.images import load_rgb as read_rgb
    from vggheads.headmodel import load_head_model
    from vggheads.labelling.landmark_fit import LandmarkFitLabeller, face_from_head_box
    from vggheads.labelling.truth import truth_by_sample
    from vggheads.schemas import read_table

    truth = truth_by_sample(read_table(shard[1], "render_heads"))
    sid, t = next(iter(truth.items()))
    image = read_rgb(shard[2] / f"{sid}.png")
    labeller = LandmarkFitLabeller(load_head_model(head_model), n_shape=10, n_expr=5)
    labels = labeller(image, sid, t.boxes, extend_boxes(t.boxes, 0.25, 160, 160))
    assert labels.ok.all() and np.isfinite(labels.params).all()
    centre = (t.boxes[:, :2] + t.boxes[:, 2:]) / 2
    size = t.boxes[:, 2:] - t.boxes[:, :2]
    assert (np.abs(labels.params[:, 409:411] - centre) < size).all()  # the fitted head is on its box
    assert sum(labeller.face_sources.values()) == len(t.boxes)
    f = face_from_head_box([0, 0, 100, 120])
    assert f[0] > 0 and f[2] < 100 and f[1] > 20 and f[3] < 120


# ------------------------------------------------------------------ stage


def _stage_params(params):
    params["tracking"]["enabled"] = False
    params["labels"]["quality_labellers"] = []
    return params


def test_label_3dmm_stage_truth_on_perfect_detections(shard, head_model, tmp_path, params):
    from vggheads.schemas import SCHEMAS, from_rows, read_table, write_table
    from vggheads.stages.label_3dmm import Label3dmmJob, label_3dmm

    table, heads, images = shard
    truth = read_table(heads, "render_heads").to_pylist()
    rows = [{"sample_id": h["sample_id"], "head": k, "box": h["box"], "score": 0.9} for k, h in enumerate(truth)]
    write_table(from_rows("detections", rows), tmp_path / "det.parquet", "detections")
    stats = label_3dmm(
        _stage_params(params),
        Label3dmmJob(
            shard="00000",
            render_table=table,
            images=images,
            detections=tmp_path / "det.parquet",
            truth=heads,
            head_model=head_model,
            out=tmp_path / "labels.parquet",
            stats=tmp_path / "labels.stats.json",
        ),
    )
    labels = read_table(tmp_path / "labels.parquet", "labels")
    assert labels.num_rows == len(truth) == stats["labelled"]
    assert labels.schema.field("flame_params").type == SCHEMAS["labels"].field("flame_params").type
    q = stats["quality"]["truth"]["metrics"]
    assert q["detection_recall"] == 1.0 and q["nme_pct"] == pytest.approx(0.0, abs=1e-6)
    from vggheads.core.metrics import unitless_keys

    assert unitless_keys(stats) == []  # NME, angle and pixel keys name their unit (issue 15)
    assert q["pose_mae_deg"] == pytest.approx(0.0, abs=1e-2)
    row = labels.to_pylist()[0]
    ext = np.asarray(row["extended_box"])
    box = np.asarray(row["box"])
    assert (ext[:2] <= box[:2]).all() and (ext[2:] >= box[2:]).all()
    assert json.loads((tmp_path / "labels.stats.json").read_text())["labelled"] == len(truth)


def test_label_3dmm_stage_counts_bad_images_and_false_positives(shard, head_model, tmp_path, params):
    import shutil

    from vggheads.schemas import from_rows, read_table, write_table
    from vggheads.stages.label_3dmm import Label3dmmJob, label_3dmm

    table, heads, images = shard
    local = tmp_path / "00000"
    shutil.copytree(images, local)
    ids = read_table(table, "render")["sample_id"].to_pylist()
    (local / f"{ids[0]}.png").write_bytes((local / f"{ids[0]}.png").read_bytes()[:100])  # truncated
    rows = [{"sample_id": ids[1], "head": 0, "box": [1, 1, 4, 4], "score": 0.6}]  # a false positive
    write_table(from_rows("detections", rows), tmp_path / "det.parquet", "detections")
    stats = label_3dmm(
        _stage_params(params),
        Label3dmmJob(
            shard="00000",
            render_table=table,
            images=local,
            detections=tmp_path / "det.parquet",
            truth=heads,
            head_model=head_model,
            out=tmp_path / "labels.parquet",
            stats=tmp_path / "labels.stats.json",
        ),
    )
    assert stats["unreadable"] == 1 and stats["dropped"] == {"no_truth_match": 1} and stats["labelled"] == 0
    assert read_table(tmp_path / "labels.parquet", "labels").num_rows == 0
    q = stats["quality"]["truth"]["metrics"]
    assert q["detection_precision"] == 0.0 and q["images"] == len(ids) - 1


def test_label_3dmm_stage_refuses_a_missing_labeller_file_before_writing(shard, head_model, tmp_path, params):
    from vggheads.stages.label_3dmm import Label3dmmJob, label_3dmm

    from vggheads.schemas import from_rows, write_table

    params = _stage_params(params)
    params["labels"]["labeller"] = "dad3dnet"
    params["labels"]["dad3dnet"]["weights"] = str(tmp_path / "nope.trcd")
    write_table(from_rows("detections", []), tmp_path / "det.parquet", "detections")
    with pytest.raises(MissingWeightsError, match="nope.trcd"):
        label_3dmm(
            params,
            Label3dmmJob(
                shard="00000",
                render_table=shard[0],
                images=shard[2],
                detections=tmp_path / "det.parquet",
                truth=shard[1],
                head_model=head_model,
                out=tmp_path / "labels.parquet",
                stats=tmp_path / "labels.stats.json",
            ),
        )
    assert not (tmp_path / "labels.parquet").exists() and not list(tmp_path.glob(".labels*"))
