"""``vggheads predict``: JSON per head and overlay pictures, torch and ONNX alike, on a real photo too."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from test_model import tiny_head_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from vggheads.headmodel import save_head_model
    from vggheads.model.config import ModelConfig
    from vggheads.model.checkpoint import export_onnx, save_model
    from vggheads.model.network import HeadDetectionModel

    root = tmp_path_factory.mktemp("predict")
    save_head_model(tiny_head_model(), root / "head.npz")
    torch.manual_seed(0)
    model = HeadDetectionModel(ModelConfig(size="n", n_shape=6, n_expr=3, imgsz=96, head_model=str(root / "head.npz")))
    for level in model.model[-1].cv3:  # spread the untrained scores so that NMS has no ties
        torch.nn.init.normal_(level[-1].weight, std=0.05)
    save_model(model.eval(), root / "model" / "model.safetensors")
    export_onnx(model, root / "model" / "model.onnx")
    return root / "model"


@pytest.fixture
def photo(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "street.png"
    Image.fromarray(rng.integers(0, 255, (90, 150, 3), dtype=np.uint8)).save(path)
    return path


def predict(capsys, *args) -> tuple[int, list[dict]]:
    from vggheads.cli import main

    code = main(["predict", *map(str, args)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return code, lines


def test_predict_prints_and_writes_json_per_head_and_an_overlay(capsys, model_dir, photo, tmp_path):
    from PIL import Image

    out = tmp_path / "out"
    code, records = predict(capsys, photo, photo, "--weights", model_dir, "--out", out, "--conf", "0.0")
    assert code == 0 and len(records) == 2
    rec = records[0]
    assert rec["width"] == 150 and rec["height"] == 90 and rec["backend"] == "torch"
    assert rec["heads"], "conf 0 keeps the best boxes of even an untrained network"
    head = rec["heads"][0]
    assert len(head["box"]) == 4 and len(head["flame_params"]) == 413 and np.shape(head["landmarks"]) == (68, 3)
    assert np.shape(head["rotation"]) == (3, 3) and {"yaw", "pitch", "roll", "score", "face_box"} <= set(head)
    assert "vertices" not in head
    assert json.loads((out / "street.json").read_text()) == rec
    assert (out / "street_2.json").exists(), "a second input of the same name must not overwrite the first"
    overlay = np.asarray(Image.open(out / "street.png"))
    assert overlay.shape[0] >= 480 and overlay.shape[0] / overlay.shape[1] == pytest.approx(90 / 150, rel=0.02)
    assert (
        np.abs(
            overlay[::6, ::6].astype(int) - np.asarray(Image.open(photo).resize(overlay.shape[1::-1], 0))[::6, ::6]
        ).sum()
        > 0
    )


def test_onnx_backend_gives_the_same_heads(capsys, model_dir, photo):
    _, (torch_rec,) = predict(capsys, photo, "--weights", model_dir, "--conf", "0.0")
    _, (onnx_rec,) = predict(capsys, photo, "--weights", model_dir, "--onnx", "--conf", "0.0")
    assert onnx_rec["backend"] == "onnx" and len(onnx_rec["heads"]) >= 5
    for a, b in zip(torch_rec["heads"][:5], onnx_rec["heads"][:5]):
        assert np.allclose(a["box"], b["box"], atol=0.05) and abs(a["score"] - b["score"]) < 1e-3


def test_missing_weights_is_a_clear_error(capsys, photo, tmp_path):
    from vggheads.cli import main

    assert main(["predict", str(photo), "--weights", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "detector weights not found" in err and "Traceback" not in err


def test_predict_on_a_real_photo(capsys, model_dir, shared_data, tmp_path):
    photo = shared_data / "benchmarks" / "wider_val" / "0_Parade_marchingband_1_765.jpg"
    code, (rec,) = predict(capsys, photo, "--weights", model_dir, "--out", tmp_path, "--conf", "0.0", "--vertices")
    assert code == 0 and rec["width"] == 1024 and rec["heads"]
    head = rec["heads"][0]
    assert np.shape(head["vertices"]) == (240, 3)
    x1, y1, x2, y2 = head["box"]
    assert np.isfinite(head["box"]).all() and x2 > x1 and y2 > y1
    from PIL import Image

    overlay = Image.open(tmp_path / "0_Parade_marchingband_1_765.png")
    assert overlay.size == (rec["width"], rec["height"]), "a large photo is drawn at its own size"


def test_out_in_the_inputs_folder_never_overwrites_an_input(capsys, model_dir, tmp_path):
    from PIL import Image

    from vggheads.cli import main

    photo = tmp_path / "street.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(photo)
    before = photo.read_bytes()
    assert main(["predict", str(photo), "--weights", str(model_dir), "--out", str(tmp_path), "--conf", "0.0"]) == 0
    assert photo.read_bytes() == before, "the input photo must never be replaced by its overlay"
    assert (tmp_path / "street_pred.png").exists() and (tmp_path / "street_pred.json").exists()
    assert not (tmp_path / "street.json").exists(), "json and overlay keep one name"
    # a second run again leaves the input alone and writes the same names
    assert (
        main(["predict", str(photo), "--weights", str(model_dir), "--out", str(tmp_path / "."), "--conf", "0.0"]) == 0
    )
    assert photo.read_bytes() == before and not (tmp_path / "street_pred_pred.png").exists()


@pytest.mark.parametrize(
    "flag,value", [("--conf", "1.5"), ("--conf", "-0.1"), ("--iou", "2"), ("--iou", "nan"), ("--conf", "high")]
)
def test_thresholds_outside_the_unit_interval_are_refused(capsys, model_dir, photo, flag, value):
    from vggheads.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(photo), "--weights", str(model_dir), flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "[0, 1]" in err


def test_vertices_only_on_request(capsys, model_dir, photo):
    _, (plain,) = predict(capsys, photo, "--weights", model_dir, "--conf", "0.0")
    _, (full,) = predict(capsys, photo, "--weights", model_dir, "--conf", "0.0", "--vertices")
    head = plain["heads"][0]
    assert {"box", "score", "flame_params", "landmarks", "yaw", "pitch", "roll"} <= set(head) and "vertices" not in head
    assert np.shape(full["heads"][0]["vertices"]) == (240, 3)
    assert len(json.dumps(plain)) < len(json.dumps(full)) / 2


def test_a_bad_file_is_reported_and_the_rest_still_run(capsys, model_dir, photo, tmp_path):
    from vggheads.cli import main

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out"
    code = main(
        [
            "predict",
            str(photo),
            str(broken),
            str(missing),
            str(photo),
            "--weights",
            str(model_dir),
            "--out",
            str(out),
            "--conf",
            "0.0",
        ]
    )
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    assert code == 1, "a failed image makes the exit status non-zero, after the others ran"
    assert [r["image"] for r in records] == [str(photo), str(photo)]
    assert "broken.png" in captured.err and "missing.jpg" in captured.err and "2 of 4 images failed" in captured.err
    assert "Traceback" not in captured.err
    assert (out / "street.json").exists() and (out / "street_2.json").exists()
