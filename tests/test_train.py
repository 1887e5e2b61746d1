"""Stage train on a tiny procedural manifest: every output, the MLflow run with per-epoch losses,
the ONNX check, resuming a killed run, and a fresh start when the params change."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    from vggheads.model.toydata import toy_dataset

    return toy_dataset(tmp_path_factory.getbasetemp() / "vggheads-model-toy", n_train=6, n_val=2, size=96)


def tiny(params: dict, epochs: int = 2) -> dict:
    p = json.loads(json.dumps(params))
    p["model"].update(imgsz=96, n_shape=8, n_expr=4)
    p["train"].update(epochs=epochs, batch=3, warmup_epochs=0.5, init="scratch", bn_images=4, val_every_epoch=True)
    return p


def run(params, toy, root, threads: int = 2):
    from vggheads.stages.train import TrainJob, train

    head, images, heads = toy
    return train(
        params,
        TrainJob(
            images=images,
            heads=heads,
            head_model=head,
            out_dir=root / "model",
            metrics=root / "metrics" / "train.json",
            plots=root / "plots",
            work_dir=root / "model" / ".work",
            threads=threads,
        ),
    )


def test_train_writes_the_model_its_exports_metrics_and_plots_and_logs_to_mlflow(params, toy, tmp_path):
    import mlflow

    from vggheads.model.checkpoint import load_model, read_config
    from vggheads.tracking import tracking_uri

    p = tiny(params)
    metrics = run(p, toy, tmp_path)
    for name in ("model.safetensors", "model.json", "model.onnx"):
        assert (tmp_path / "model" / name).stat().st_size > 0
    for name in ("history.csv", "curves.png", "predictions.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert saved["epochs"] == 2 and saved["train_images"] == 6 and saved["val_images"] == 2
    assert set(saved["val"]) >= {"ap50", "nme_pct", "fr", "nme68_pct", "matched", "nme68_anchor_pct"}
    assert saved["untrained"]["nme68_anchor_pct"] is not None
    from vggheads.core.metrics import unitless_keys

    assert unitless_keys(saved) == []  # NME keys name their unit (issue 15)
    assert metrics["onnx"]["boxes_max_abs"] < 0.05
    model = load_model(tmp_path / "model")
    assert model.arch.n_shape == 8 and model.arch.imgsz == 96
    assert read_config(tmp_path / "model" / "model.onnx") == model.arch
    history = (tmp_path / "plots" / "history.csv").read_text().splitlines()
    assert len(history) == 3 and "train/reproj_loss" in history[0] and "val/nme_pct" in history[0]

    mlflow.set_tracking_uri(tracking_uri(p))
    runs = mlflow.search_runs(
        experiment_names=[p["tracking"]["experiment"]],
        filter_string="tags.`vggheads.stage` = 'train'",
        output_format="list",
    )
    run_ = runs[0]
    client = mlflow.MlflowClient()
    for loss in ("cls_loss", "iou_loss", "dfl_loss", "reproj_loss", "vertices3d_loss", "rotation_loss"):
        assert len(client.get_metric_history(run_.info.run_id, f"train/{loss}")) == 2, loss
    assert len(client.get_metric_history(run_.info.run_id, "val/nme68_anchor_pct")) == 2
    assert "val.ap50" in run_.data.metrics and run_.data.params["train.loss.vertices3d"] == "50.0"
    artifacts = {a.path for a in client.list_artifacts(run_.info.run_id)}
    assert {"model.safetensors", "model.onnx", "model.json"} <= artifacts


def test_a_run_killed_after_an_epoch_resumes_to_the_same_bytes_as_an_uninterrupted_one(
    params, toy, tmp_path, monkeypatch, caplog
):
    """Kill after epoch 2 of 3, rerun: it resumes from epoch 3 and ends with the uninterrupted run's weights
    (live float32 weights, EMA, optimizer, data order and augmentation streams all restored)."""
    import logging

    from vggheads.model.trainer import HeadTrainer

    p = tiny(params, epochs=3)
    p["tracking"]["enabled"] = False
    p["train"]["augment"].update(degrees=10.0, hsv_v=0.3)  # the augmentation streams matter too
    whole = run(p, toy, tmp_path / "whole")

    original = HeadTrainer.save_model
    started = []
    orig_start = HeadTrainer.resume_training

    def save_then_die(self):
        original(self)
        if self.epoch == 1:
            raise KeyboardInterrupt("killed after epoch 2")
        return True

    def record_start(self, ckpt):
        orig_start(self, ckpt)
        started.append(self.start_epoch)

    monkeypatch.setattr(HeadTrainer, "save_model", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(p, toy, tmp_path / "killed")
    assert not (tmp_path / "killed" / "model" / "model.safetensors").exists()
    monkeypatch.setattr(HeadTrainer, "save_model", original)
    monkeypatch.setattr(HeadTrainer, "resume_training", record_start)
    with caplog.at_level(logging.WARNING):
        resumed = run(p, toy, tmp_path / "killed")
    assert started == [2], "the rerun did not resume from the third epoch"
    assert "does not reproduce an uninterrupted run" not in caplog.text
    csv = (tmp_path / "killed" / "model" / ".work" / "run" / "results.csv").read_text().splitlines()
    assert [line.split(",")[0].strip() for line in csv[1:]] == ["1", "2", "3"]
    assert (tmp_path / "killed" / "model" / "model.safetensors").read_bytes() == (
        tmp_path / "whole" / "model" / "model.safetensors"
    ).read_bytes()
    assert resumed == whole
    # the exported weights are float16-rounded; the float32 live weights and every logged loss agree too
    final = [
        torch.load(tmp_path / run_ / "model" / ".work" / "run" / "weights" / "resume.pt", weights_only=False)
        for run_ in ("whole", "killed")
    ]
    assert final[0]["model"].keys() == final[1]["model"].keys()
    assert all(torch.equal(final[0]["model"][k], final[1]["model"][k]) for k in final[0]["model"])
    losses = [
        [row.split(",")[2:] for row in (tmp_path / run_ / "plots" / "history.csv").read_text().splitlines()]
        for run_ in ("whole", "killed")
    ]
    assert losses[0] == losses[1]
    assert (tmp_path / "killed" / "metrics" / "train.json").read_bytes() == (
        tmp_path / "whole" / "metrics" / "train.json"
    ).read_bytes()

    # finished: a rerun only re-exports; changed params start afresh
    started.clear()
    again = run(p, toy, tmp_path / "killed")
    assert not started and again["epochs"] == 3
    p["train"]["epochs"] = 1
    fresh = run(p, toy, tmp_path / "killed")
    assert fresh["epochs"] == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_training_uses_the_threads_it_was_given_not_the_machines_core_count(
    params, toy, tmp_path, monkeypatch, threads
):
    from vggheads.model.trainer import HeadTrainer

    seen = []
    original = HeadTrainer._do_train if hasattr(HeadTrainer, "_do_train") else None

    def record(self, *a, **k):
        seen.append(torch.get_num_threads())
        return original(self, *a, **k)

    monkeypatch.setattr(HeadTrainer, "_do_train", record)
    monkeypatch.setattr("ultralytics.utils.torch_utils.NUM_THREADS", 7)  # what ultralytics picks on an 8-core machine
    p = tiny(params, epochs=1)
    p["tracking"]["enabled"] = False
    metrics = run(p, toy, tmp_path, threads=threads)
    assert seen == [threads] and metrics["threads"] == threads


@pytest.mark.parametrize("crop", [None, 64])
def test_the_trainer_never_flips_and_rotates_targets_with_the_image(toy, crop):
    from types import SimpleNamespace

    from vggheads.geometry import FlameLayer, decode
    from vggheads.headmodel import load_head_model
    from vggheads.model.dataset import HeadDataset

    head, images, heads = toy
    hyp = SimpleNamespace(degrees=45.0, scale=0.25, translate=0.1, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0)
    ds = HeadDataset(images, heads, "train", imgsz=96, augment=True, hyp=hyp, seed=3, crop=crop)
    layer = FlameLayer(load_head_model(head))
    checked = 0
    for i in range(len(ds)):
        item = ds[i]
        A = item["transform"][0]
        assert A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0] > 0, "a flip (negative determinant) was applied"
        assert item["img"].shape[1:] == (crop or 96, crop or 96)
        if len(item["flame_params"]):
            lm = decode(item["flame_params"], layer).landmarks_image[..., :2]
            assert torch.allclose(lm, item["landmarks"][..., :2], atol=0.1)
            if crop:  # the window is placed around a head: one face lies wholly inside it
                xy = item["landmarks"][..., :2]
                assert ((xy >= -2) & (xy <= crop + 2)).all(-1).all(-1).any()
            checked += 1
    assert checked >= 3


def test_a_manifest_without_training_images_is_a_clear_error(params, tmp_path):
    from test_model import _write_manifest, tiny_head_model

    from vggheads.errors import InputError
    from vggheads.headmodel import save_head_model
    from vggheads.stages.train import TrainJob, train

    images, heads = _write_manifest(tmp_path, tiny_head_model(), n_images=1)  # its one image is 'val'
    save_head_model(tiny_head_model(), tmp_path / "head.npz")
    with pytest.raises(InputError, match="no image with split 'train'"):
        train(
            tiny(params),
            TrainJob(
                images=images,
                heads=heads,
                head_model=tmp_path / "head.npz",
                out_dir=tmp_path / "model",
                metrics=tmp_path / "m.json",
                plots=tmp_path / "plots",
                work_dir=tmp_path / "work",
            ),
        )
    assert not (tmp_path / "model").exists()
