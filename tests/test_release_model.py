"""The released model's backend (``vggheads.release.official``) on stand-ins of its exact contract:
the package's letterbox against hand-computed cases, the post-processing, TorchScript and ONNX
alike, ``vggheads predict --weights x.trcd|.onnx``, and the errors a user can meet."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from test_model import tiny_head_model

IMGSZ = 96


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    """This project's (untrained) network of 96 px, its weights, and stand-ins of it as .trcd and .onnx."""
    from vggheads.headmodel import save_head_model
    from vggheads.model.config import ModelConfig
    from vggheads.model.checkpoint import save_model
    from vggheads.model.network import HeadDetectionModel
    from vggheads.release.standin import build_standin

    root = tmp_path_factory.mktemp("official")
    save_head_model(tiny_head_model(), root / "head.npz")
    torch.manual_seed(0)
    model = HeadDetectionModel(
        ModelConfig(size="n", n_shape=6, n_expr=3, imgsz=IMGSZ, head_model=str(root / "head.npz"))
    )
    for level in model.model[-1].cv3:  # spread the untrained scores so that NMS has no ties
        torch.nn.init.normal_(level[-1].weight, std=0.05)
    model.eval()
    save_model(model, root / "model" / "model.safetensors")
    build_standin(model, root / "vgg_heads_l.trcd")
    build_standin(model, root / "vgg_heads_l.onnx")
    return root


class _Constant(torch.nn.Module):
    """A TorchScript module of the released contract that returns fixed canvas-pixel outputs."""

    def __init__(self, boxes, scores, params):
        super().__init__()
        self.register_buffer("boxes", torch.tensor(boxes, dtype=torch.float32))
        self.register_buffer("scores", torch.tensor(scores, dtype=torch.float32))
        self.register_buffer("params", torch.tensor(params, dtype=torch.float32))

    def forward(self, x: torch.Tensor):
        b = x.shape[0]
        return (self.boxes.expand(b, -1, -1), self.scores.expand(b, -1, -1), self.params.expand(b, -1, -1))


def _constant_file(path, boxes, scores, params):
    torch.jit.save(torch.jit.script(_Constant(boxes, scores, params)), str(path))
    return path


def _frontal(scale, tx, ty, tz=0.0):
    from vggheads.geometry import FRONTAL

    p = np.zeros(413, dtype=np.float32)
    R = np.array(FRONTAL)
    p[403:409] = np.concatenate([R[:, 0], R[:, 1]])
    p[409:413] = [tx, ty, tz, scale]
    return p


def test_letterbox_matches_the_hand_computed_package_case():
    from vggheads.release.official import letterbox_official

    # 100 x 50 (w x h) to 64: long side 64, short int(50 * 64 / 100) = 32, pad_h 32 -> 16 on top, 16 below
    image = np.full((50, 100, 3), 200, dtype=np.uint8)
    canvas, scale, pad = letterbox_official(image, 64)
    assert scale == pytest.approx(0.64) and pad == (0, 16)
    assert (canvas[:16] == 127).all() and (canvas[48:] == 127).all() and (canvas[16:48] == 200).all()
    # 90 x 100 to 64: short side int(90 * 0.64) = int(57.6) = 57 (truncated, as the package), pad_w 7 -> 3 left, 4 right
    image = np.full((100, 90, 3), 10, dtype=np.uint8)
    canvas, scale, pad = letterbox_official(image, 64)
    assert pad == (3, 0) and scale == pytest.approx(0.64)
    assert (canvas[:, :3] == 127).all() and (canvas[:, 60:] == 127).all() and (canvas[:, 3:60] == 10).all()
    # the evaluation scripts' variant pads at the bottom and right
    canvas, _, pad = letterbox_official(image, 64, mode="evaluation")
    assert pad == (0, 0) and (canvas[:, :57] == 10).all() and (canvas[:, 57:] == 127).all()


def test_letterbox_uses_lanczos():
    import cv2

    from vggheads.release.official import letterbox_official

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)
    canvas, _, (left, top) = letterbox_official(image, 64)
    expected = cv2.resize(image, (64, 32), interpolation=cv2.INTER_LANCZOS4)
    assert np.array_equal(canvas[top : top + 32], expected)


def test_outputs_are_unpadded_and_unscaled_by_hand(tmp_path):
    from vggheads.headmodel import save_head_model
    from vggheads.release.official import OfficialDetector

    save_head_model(tiny_head_model(), tmp_path / "head.npz")
    # one head on the 64 px canvas of a 100 x 50 image: scale 0.64, pad (0, 16)
    params = _frontal(scale=64.0, tx=26.0, ty=32.0, tz=3.2)
    path = _constant_file(
        tmp_path / "const.trcd",
        [[[10.0, 16.0, 42.0, 48.0], [11.0, 17.0, 43.0, 49.0]]],
        [[[0.9], [0.8]]],
        [[params, params]],
    )
    det = OfficialDetector(path, tmp_path / "head.npz", image_size=64)
    heads = det(np.zeros((50, 100, 3), dtype=np.uint8))
    assert len(heads) == 1, "the second box overlaps the first above IoU 0.5: NMS removes it"
    h = heads[0]
    # box: (10, 16, 42, 48) - (0, 16) = (10, 0, 42, 32); / 0.64 = (15.625, 0, 65.625, 50); rint = (16, 0, 66, 50)
    assert h.box.tolist() == [16.0, 0.0, 66.0, 50.0] and h.score == pytest.approx(0.9)
    # parameters: s / 0.64 = 100, t = ((26, 32) - (0, 16)) / 0.64 = (40.625, 25), tz = 3.2 / 0.64 = 5
    assert h.flame_params[412] == pytest.approx(100.0) and h.flame_params[409:412] == pytest.approx([40.625, 25.0, 5.0])
    assert (h.yaw, h.pitch, h.roll) == pytest.approx((0.0, 0.0, 0.0), abs=1e-4)
    # the decoded mesh is the canvas mesh mapped back: (v_canvas - pad) / scale
    from vggheads.geometry import FlameLayer, decode
    from vggheads.headmodel import load_head_model

    canvas = decode(torch.from_numpy(params[None]), FlameLayer(load_head_model(tmp_path / "head.npz"))).vertices_image[
        0
    ]
    back = (canvas.numpy() - np.array([0.0, 16.0, 0.0])) / 0.64
    assert np.allclose(h.vertices, back, atol=1e-3)
    # the evaluation scripts' variant: no padding offset, no clipping or rounding of boxes
    det.mode = "evaluation"
    h = det(np.zeros((50, 100, 3), dtype=np.uint8))[0]
    assert h.box == pytest.approx([15.625, 25.0, 65.625, 75.0])


def test_thresholds_top_k_and_keep(tmp_path):
    from vggheads.release.official import official_nms

    rng = np.random.default_rng(1)
    n = 1500
    xy = rng.uniform(0, 6000, (n, 2))
    boxes = np.concatenate([xy, xy + 10], 1).astype(np.float32)  # far apart: NMS keeps every box
    scores = rng.uniform(0, 1, n).astype(np.float32)
    params = np.tile(np.arange(n, dtype=np.float32)[:, None], (1, 413))
    b, s, p = official_nms(boxes, scores, params, conf=0.3)
    assert len(s) == 100 and (np.diff(s) <= 0).all() and s.min() >= 0.3
    assert np.allclose(s, np.sort(scores)[::-1][:100]) and np.array_equal(
        p[:, 0].astype(int), np.argsort(-scores)[:100]
    )
    b, s, p = official_nms(boxes, scores, params, conf=0.0, keep_top_k=5000)
    assert len(s) == 1000, "only the best 1000 go to NMS"


@pytest.mark.parametrize("suffix", [".trcd", ".onnx"])
def test_standin_has_the_contract_and_this_projects_outputs(standins, suffix):
    """The stand-in's three outputs are this project's network output, transposed, xyxy, padded to 413."""
    from vggheads.model.flame import pad_params
    from vggheads.model.inference import HeadDetector
    from vggheads.release.official import OfficialDetector

    x = np.random.default_rng(0).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    ref = HeadDetector(standins / "model").raw(x)[0].T  # (A, 5 + P)
    boxes, scores, params = OfficialDetector(standins / f"vgg_heads_l{suffix}", standins / "head.npz").raw(x)
    A = ref.shape[0]
    assert boxes.shape == (1, A, 4) and scores.shape == (1, A) and params.shape == (1, A, 413)
    xywh = ref[:, :4]
    assert np.allclose(
        boxes[0], np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1), atol=1e-2
    )
    assert np.allclose(scores[0], ref[:, 4], atol=1e-5)
    assert np.allclose(params[0], pad_params(torch.from_numpy(ref[:, 5:]), 6, 3).numpy(), rtol=1e-4, atol=1e-3)
    assert (params[0, :, 6:300] == 0).all() and (params[0, :, 303:400] == 0).all()


def test_postprocessing_gives_this_projects_heads_on_the_same_outputs(standins):
    """Fed the same network outputs on an unpadded canvas, the released pipeline and this project's
    give the same heads (boxes clipped and rounded by the package)."""
    from vggheads.model.flame import pad_params
    from vggheads.model.inference import HeadDetector
    from vggheads.release.official import OfficialDetector

    x = np.random.default_rng(0).random((1, 3, IMGSZ, IMGSZ), dtype=np.float32)
    ours = HeadDetector(standins / "model", conf=0.0)
    out = ours.raw(x)[0]  # (5 + P, A)
    ref = ours.postprocess(out, np.eye(2), np.zeros(2))
    y = out.T
    boxes = np.concatenate([y[:, :2] - y[:, 2:4] / 2, y[:, :2] + y[:, 2:4] / 2], 1)
    params = pad_params(torch.from_numpy(np.ascontiguousarray(y[:, 5:])), 6, 3).numpy()
    off = OfficialDetector(standins / "vgg_heads_l.trcd", standins / "head.npz", conf=0.0)
    got = off.postprocess(boxes, y[:, 4], params, 1.0, (0, 0))
    assert len(got) == len(ref) > 3
    for a, b in zip(ref, got):
        assert b.score == a.score and np.array_equal(b.box, np.rint(a.box.clip(0, IMGSZ)))
        assert np.allclose(b.flame_params, a.flame_params, atol=1e-5)
        assert np.allclose(b.landmarks, a.landmarks, atol=1e-4) and np.allclose(b.face_box, a.face_box, atol=1e-4)
        assert (b.yaw, b.pitch, b.roll) == pytest.approx((a.yaw, a.pitch, a.roll), abs=1e-4)


def test_the_two_formats_agree_on_a_photo_sized_image(standins):
    from vggheads.release.official import OfficialDetector

    image = np.random.default_rng(2).integers(0, 255, (70, 130, 3), dtype=np.uint8)
    a = OfficialDetector(standins / "vgg_heads_l.trcd", standins / "head.npz", conf=0.0)
    b = OfficialDetector(standins / "vgg_heads_l.onnx", standins / "head.npz", conf=0.0)
    ha, hb = a(image), b(image)
    assert a.backend == "official-torchscript" and b.backend == "official-onnx" and len(ha) == len(hb) > 3
    for x, y in zip(ha[:5], hb[:5]):
        assert np.allclose(x.box, y.box, atol=1.0) and abs(x.score - y.score) < 1e-4


def test_wrong_outputs_are_a_clear_error(tmp_path):
    from vggheads.errors import InputError
    from vggheads.headmodel import save_head_model
    from vggheads.release.official import OfficialDetector

    save_head_model(tiny_head_model(), tmp_path / "head.npz")
    path = _constant_file(tmp_path / "short.trcd", [[[0.0, 0.0, 1.0, 1.0]]], [[[0.9]]], [[np.zeros(412)]])
    with pytest.raises(InputError, match=r"412.*params \[B,A,413\]|params \[B,A,413\]"):
        OfficialDetector(path, tmp_path / "head.npz", image_size=64)(np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "junk.trcd").write_bytes(b"not a model")
    with pytest.raises(InputError, match="junk.trcd: not a loadable TorchScript"):
        OfficialDetector(tmp_path / "junk.trcd", tmp_path / "head.npz")


def test_missing_model_names_file_origin_and_licence(capsys, tmp_path):
    from vggheads.cli import main

    image = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    assert main(["predict", str(image), "--weights", str(tmp_path / "vgg_heads_l.trcd")]) == 2
    err = capsys.readouterr().err
    assert "vgg_heads_l.trcd" in err and "okupyn/vgg_heads" in err and "CC BY-NC 4.0" in err
    assert "Traceback" not in err


def test_project_head_model_is_named_not_comparable(standins, caplog):
    from vggheads.release.official import OfficialDetector

    with caplog.at_level(logging.WARNING):
        OfficialDetector(standins / "vgg_heads_l.trcd", standins / "head.npz")
    assert "not FLAME" in caplog.text and "not comparable" in caplog.text


@pytest.mark.parametrize("suffix", [".trcd", ".onnx"])
def test_predict_command_with_the_released_contract(capsys, standins, tmp_path, suffix):
    from PIL import Image

    from vggheads.cli import main

    photo = tmp_path / "group.jpg"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (120, 200, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            str(photo),
            "--weights",
            str(standins / f"vgg_heads_l{suffix}"),
            "--head-model",
            str(standins / "head.npz"),
            "--conf",
            "0.0",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rec = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")][0]
    assert rec["backend"] == ("official-torchscript" if suffix == ".trcd" else "official-onnx")
    assert rec["width"] == 200 and rec["height"] == 120 and rec["heads"]
    head = rec["heads"][0]
    assert set(head) == {"box", "score", "flame_params", "landmarks", "rotation", "yaw", "pitch", "roll", "face_box"}
    assert len(head["flame_params"]) == 413 and np.shape(head["landmarks"]) == (68, 3)
    assert all(float(v).is_integer() for v in head["box"]), "the package rounds boxes to pixels"
    assert json.loads((out / "group.json").read_text()) == rec and (out / "group.png").exists()


def test_labeller_vggheads_labels_the_detections_it_confirms(standins):
    from vggheads.labelling.factory import build_labeller

    cfg = {
        "match_iou": 0.5,
        "device": "cpu",
        "vggheads": {"weights": str(standins / "vgg_heads_l.trcd"), "min_score": 0.0},
    }
    labeller = build_labeller("vggheads", cfg, head_model_path=standins / "head.npz")
    image = np.random.default_rng(4).integers(0, 255, (IMGSZ, IMGSZ, 3), dtype=np.uint8)
    heads = labeller.detector(image)
    boxes = np.array([heads[0].box, [2000.0, 2000.0, 2010.0, 2010.0]])
    labels = labeller(image, "x", boxes, boxes)
    assert labels.ok.tolist() == [True, False] and labels.reasons == ["", "vggheads_no_match"]
    assert np.allclose(labels.params[0], heads[0].flame_params, atol=1e-4)


def test_labeller_vggheads_missing_weights_names_the_key(standins, tmp_path):
    from vggheads.errors import MissingWeightsError
    from vggheads.labelling.factory import build_labeller

    cfg = {
        "match_iou": 0.5,
        "device": "cpu",
        "vggheads": {"weights": str(tmp_path / "vgg_heads_l.trcd"), "min_score": 0.3},
    }
    with pytest.raises(MissingWeightsError, match=r"labels.vggheads.weights.*|okupyn/vgg_heads"):
        build_labeller("vggheads", cfg, head_model_path=standins / "head.npz")


def test_evaluation_system_vggheads_official(standins, params, aflw, head_model_file, tmp_path):
    """The released model takes part in the benchmarks like this project's model: the synthetic val and AFLW2000-3D."""
    from vggheads.model.toydata import make_manifest
    from vggheads.stages.evaluate import build_systems, run_benchmark

    params["evaluate"]["systems"] = ["vggheads-official"]
    params["evaluate"]["vggheads_official"]["weights"] = str(standins / "vgg_heads_l.onnx")
    params["evaluate"]["max_images"] = 2
    params["evaluate"]["aflw2000"]["root"] = str(aflw)
    systems = build_systems(params, None, standins / "head.npz")
    assert list(systems) == ["vggheads-official"]
    images, heads = make_manifest(head_model_file, tmp_path / "val", n_train=0, n_val=2, size=96, seed=1)
    (val,) = run_benchmark("synthetic_val", params, systems, standins / "head.npz", images, heads)
    assert val.system == "vggheads-official" and "ap50" in val.metrics
    (pose,) = run_benchmark("aflw2000", params, systems, standins / "head.npz")
    assert pose.system == "vggheads-official" and pose.metrics


def test_release_standin_command(capsys, standins, tmp_path):
    from vggheads.cli import main
    from vggheads.release.official import OfficialDetector

    assert main(["release", "standin", "--model", str(standins / "model"), "--out", str(tmp_path / "s.onnx")]) == 0
    assert "TorchScript" not in capsys.readouterr().out
    det = OfficialDetector(tmp_path / "s.onnx", standins / "head.npz")
    assert det.image_size == IMGSZ and det.backend == "official-onnx"


def test_channel_order_per_benchmark(standins):
    """The paper's training and pose/DAD/FDDB scripts fed BGR, its WIDER script and the package RGB."""
    from vggheads.evaluation.peers import official_system
    from vggheads.release.official import OfficialDetector

    image = np.random.default_rng(6).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    rgb = OfficialDetector(standins / "vgg_heads_l.trcd", standins / "head.npz").preprocess(image)[0]
    bgr = OfficialDetector(standins / "vgg_heads_l.trcd", standins / "head.npz", channels="bgr").preprocess(image)[0]
    assert np.array_equal(bgr, rgb[:, ::-1]) and not np.array_equal(bgr, rgb)
    system = official_system(
        standins / "vgg_heads_l.trcd", standins / "head.npz", device="cpu", bgr_benchmarks=["aflw2000", "fddb"]
    )
    assert system.for_benchmark("aflw2000").detector.channels == "bgr"
    assert system.for_benchmark("wider").detector.channels == "rgb"
    assert system.detector.mode == "evaluation"


def test_a_model_of_another_contract_is_a_clear_error(tmp_path):
    """A TorchScript file that fails on the released model's input names the file and the contract."""
    from vggheads.errors import InputError
    from vggheads.headmodel import save_head_model
    from vggheads.release.official import OfficialDetector

    class OneChannel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)

        def forward(self, x):
            return self.conv(x)

    save_head_model(tiny_head_model(), tmp_path / "head.npz")
    torch.jit.save(torch.jit.script(OneChannel()), str(tmp_path / "other.trcd"))
    det = OfficialDetector(tmp_path / "other.trcd", tmp_path / "head.npz", image_size=32)
    with pytest.raises(InputError, match=r"other.trcd: the model does not take a \(B, 3, 32, 32\)"):
        det(np.zeros((20, 20, 3), np.uint8))
