"""Train the binary head detector with ultralytics, offline, from a model yaml (no pretrained weights).

The paper trained RT-DETR on 8,000 hand-labelled images (0.925 mAP on 2,000 val images); here
any ultralytics detection yaml works (``yolo11n.yaml`` for CPUs, ``rtdetr-l.yaml`` as the paper)
or a local ``.pt`` to fine-tune. ultralytics' run directory goes under the stage's work
directory (never ``./runs``), its own MLflow/W&B callbacks are off, and only the best weights are
copied (atomically) to the stage's output.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
from pathlib import Path

import numpy as np

from ..errors import ConfigError, MissingWeightsError
from .data import LabelledImage, write_yolo_dataset
from .infer import resolve_device

log = logging.getLogger(__name__)


def build_model(architecture: str):
    """An ultralytics model from a bundled yaml (``yolo11n.yaml``, ``rtdetr-l.yaml``, ...) or a local ``.pt``."""
    from ..offline import import_ultralytics

    import_ultralytics()
    from ultralytics import RTDETR, YOLO

    is_rtdetr = "rtdetr" in Path(architecture).name.lower()
    if architecture.endswith(".pt"):
        if not Path(architecture).exists():
            raise MissingWeightsError(
                "detector checkpoint to fine-tune",
                architecture,
                "Set detector.architecture to a model yaml (e.g. yolo11n.yaml) or to a local .pt file.",
            )
    elif not architecture.endswith((".yaml", ".yml")):
        raise ConfigError(f"detector.architecture '{architecture}': expected an ultralytics model yaml or a local .pt")
    try:
        return RTDETR(architecture) if is_rtdetr else YOLO(architecture)
    except FileNotFoundError as exc:
        raise ConfigError(f"detector.architecture '{architecture}': {exc}") from None


def _curves(results_csv: Path) -> list[tuple[int, dict]]:
    """Per-epoch (step, {metric: value}) from ultralytics' results.csv."""
    if not results_csv.exists():
        return []
    rows = []
    with results_csv.open() as fh:
        for row in csv.DictReader(fh):
            row = {k.strip(): v for k, v in row.items()}
            try:
                epoch = int(float(row.pop("epoch")))
            except (KeyError, ValueError):
                continue
            values = {}
            for key, val in row.items():
                try:
                    values["detector_" + key.replace("(B)", "").replace("/", "_")] = float(val)
                except (TypeError, ValueError):
                    pass
            rows.append((epoch, values))
    return rows


def train_detector(
    cfg: dict, train: list[LabelledImage], val: list[LabelledImage], out_weights: Path, work_dir: Path, seed: int = 0
) -> dict:
    """Train on ``train`` (validate on ``val``, or on ``train`` when it is empty); copy the best
    weights to ``out_weights``. Returns ``{"curves": [(epoch, metrics)], "save_dir": str}``.

    ``cfg`` is the ``detector`` section of params.yaml.
    """
    from ..io import atomic_path

    work_dir = Path(work_dir).resolve()
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    data_yaml = write_yolo_dataset(train, val, work_dir / "dataset")
    import torch

    torch.set_grad_enabled(True)  # another library in this process may have switched autograd off
    model = build_model(cfg["architecture"])
    device = resolve_device(cfg["device"])
    log.info(
        "training %s on %d images (%d heads), validating on %d, %d epochs at %d px on %s",
        cfg["architecture"],
        len(train),
        int(sum(len(i.boxes) for i in train)),
        len(val or train),
        cfg["epochs"],
        cfg["imgsz"],
        device,
    )
    model.train(
        data=str(data_yaml),
        epochs=int(cfg["epochs"]),
        imgsz=int(cfg["imgsz"]),
        batch=int(cfg["batch"]),
        device=device,
        workers=0,
        amp=False,
        plots=False,
        val=bool(cfg["val_every_epoch"]),
        project=str(work_dir),
        name="run",
        exist_ok=True,
        seed=int(seed),
        deterministic=True,
        patience=int(cfg["patience"]),
        close_mosaic=int(cfg["close_mosaic"]),
        verbose=False,
        single_cls=True,
        cache=False,
        lr0=float(cfg["lr0"]),
        warmup_epochs=float(cfg["warmup_epochs"]),
        nbs=int(cfg["batch"]),
    )
    save_dir = Path(model.trainer.save_dir)
    best = save_dir / "weights" / "best.pt"
    if not best.exists():
        best = save_dir / "weights" / "last.pt"
    with atomic_path(out_weights) as tmp:
        _save_without_provenance(best, tmp)
    return {"curves": _curves(save_dir / "results.csv"), "save_dir": str(save_dir)}


def _save_without_provenance(checkpoint: Path, out: Path) -> None:
    """Copy an ultralytics checkpoint without what differs between identical runs: the save time,
    the epochs' durations, the git commit and message, and absolute paths (same inputs, same
    bytes; DVC hashes the file)."""
    import torch

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    for key in ("date", "git"):
        ckpt.pop(key, None)
    if isinstance(ckpt.get("train_results"), dict):  # per-epoch results, with the seconds each epoch took
        ckpt["train_results"].pop("time", None)
    # the run's arguments are kept twice: as train_args and as the networks' own .args
    for args in [ckpt.get("train_args")] + [getattr(ckpt.get(k), "args", None) for k in ("model", "ema")]:
        if isinstance(args, dict):
            for key in ("project", "data", "save_dir", "name"):
                if args.get(key) is not None:
                    args[key] = None if key != "data" else Path(str(args[key])).name
    buffer = io.BytesIO()  # torch.save names the archive's folder after a file: the temporary's random name
    torch.save(ckpt, buffer)
    Path(out).write_bytes(buffer.getvalue())


def score_detections(
    gt_boxes: list[np.ndarray], pred_boxes: list[np.ndarray], pred_scores: list[np.ndarray], iou_threshold: float = 0.5
) -> dict:
    """Detection recall, precision, F1 (one-to-one Hungarian matching at ``iou_threshold``) and AP50
    over a list of images; counts included so shards can be summed."""
    from ..core.metrics import coco_ap, match_hungarian

    n_gt = n_pred = tp = 0
    ious = []
    for gts, preds in zip(gt_boxes, pred_boxes):
        pairs = match_hungarian(gts, preds, iou_threshold)
        n_gt += len(gts)
        n_pred += len(preds)
        tp += len(pairs)
        ious += [iou for _, _, iou in pairs]
    recall = tp / n_gt if n_gt else float("nan")
    precision = tp / n_pred if n_pred else float("nan")
    f1 = 2 * recall * precision / (recall + precision) if n_gt and n_pred and (recall + precision) > 0 else float("nan")
    out = {
        "images": len(gt_boxes),
        "heads": n_gt,
        "detections": n_pred,
        "true_positives": tp,
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "mean_iou_matched": float(np.mean(ious)) if ious else float("nan"),
    }
    if n_gt:
        out["ap50"] = coco_ap(gt_boxes, pred_boxes, pred_scores, iou_thresholds=[0.5])["ap50"]
    return out
