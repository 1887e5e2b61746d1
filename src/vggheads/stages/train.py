"""Stage ``train``: the multi-task detector (paper sections 3-4) on the parquet manifests.

ultralytics' trainer loop with the project's hooks (``vggheads.model.trainer``): AdamW, cosine
schedule with warm-up, EMA, one validation per epoch (AP, head-vertex NME and failure rate).
Resumable: the run lives in ``--work-dir``; a killed job restarts from its last epoch when the
params, the manifests, the head model and the starting weights are unchanged (otherwise it starts
afresh), and ends with the same weights as a run that was never killed. Torch runs on ``--threads``
threads (the job's), whatever the machine's core count. ``train.init: detector`` starts the
backbone, neck and box/class branches from the pipeline's trained head detector (``--init-weights``),
as the paper starts from a COCO-trained detector.

Outputs: the best checkpoint as ``model.safetensors`` (+ ``model.json``, the architecture record),
``model.onnx`` (checked against torch with onnxruntime), ``metrics/train.json`` (final validation,
the same validation of the untrained network for comparison, the ONNX check), the per-epoch
history as CSV and plots, and an overlay of the predictions on validation images. Everything is
logged to MLflow (params, every loss per epoch, validation metrics, the model files).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.metrics import NME68_ANCHOR_KEY, NME68_KEY, NME_KEY
from ..jobs import add_command, flag

log = logging.getLogger(__name__)

# an export bug (a wrong op, layout or constant) moves outputs by O(1); float reordering in onnxruntime
# moves them by ~1e-4, more in a barely trained network whose recalibrated BN variances are tiny
# (boxes: 0.5 % of the input side, 0.5 px at 96 px; the check feeds random noise images, far from the
# training data, where a tiny network's activations are largest)
ONNX_TOLERANCE = {"boxes_max_rel": 5e-3, "scores_max_abs": 5e-3, "params_max_rel": 0.02}
HISTORY_RENAME = {
    "metrics/precision(B)": "val/precision",
    "metrics/recall(B)": "val/recall",
    "metrics/mAP50(B)": "val/ap50",
    "metrics/mAP50-95(B)": "val/ap50_95",
    "metrics/NME": "val/" + NME_KEY,
    "metrics/FR": "val/fr",
    "metrics/NME68": "val/" + NME68_KEY,
    "metrics/matched": "val/matched",
    "metrics/NME68_anchor": "val/" + NME68_ANCHOR_KEY,
}


def _device(setting: str) -> str:
    """params train.device -> an ultralytics device string."""
    import torch

    if setting == "auto":
        return "0" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda"):
        return setting.split(":", 1)[1] if ":" in setting else "0"
    return setting


def _fingerprint(
    params: dict, images: Path, heads: Path, head_model: Path, init_weights: Path | None, threads: int
) -> str:
    import hashlib

    from ..model.config import file_sha256

    blob = json.dumps(
        {
            "model": params["model"],
            "train": params["train"],
            "seed": params["seed"],
            "images": file_sha256(images),
            "heads": file_sha256(heads),
            "head_model": file_sha256(head_model),
            "threads": threads,
            "init": file_sha256(init_weights) if init_weights else None,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _overrides(params: dict, arch, run_dir: Path) -> dict:
    t = params["train"]
    aug = t["augment"]
    return {
        "epochs": t["epochs"],
        "batch": t["batch"],
        "nbs": t["batch"],
        "imgsz": arch.imgsz,
        "device": _device(t["device"]),
        "workers": t["workers"],
        "amp": False,
        "plots": False,
        "optimizer": "AdamW",
        "lr0": t["lr"],
        "lrf": t["lr_final"],
        "cos_lr": True,
        "warmup_epochs": t["warmup_epochs"],
        "warmup_bias_lr": 0.0,
        "weight_decay": t["weight_decay"],
        "momentum": 0.937,
        "conf": t["val_conf"],
        "iou": t["nms_iou"],
        "seed": params["seed"],
        "deterministic": True,
        "project": str(run_dir.parent.resolve()),
        "name": run_dir.name,
        "exist_ok": True,
        "degrees": aug["degrees"],
        "scale": aug["scale"],
        "translate": aug["translate"],
        "hsv_h": aug["hsv_h"],
        "hsv_s": aug["hsv_s"],
        "hsv_v": aug["hsv_v"],
        "verbose": True,
        "val": bool(t["val_every_epoch"]),
    }


def _finite(value):
    """NaN (a metric with nothing to average, e.g. NME when no head was matched) -> None: strict JSON for DVC."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        return None
    return value


def _checkpoint_epoch(path: Path) -> int:
    """The epoch stored in an ultralytics checkpoint (-1 once the finished run stripped it)."""
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False).get("epoch", -1))


def _history(csv_path: Path) -> list[dict]:
    import csv

    if not csv_path.exists():
        return []
    with open(
        csv_path, newline=""
    ) as fh:  # ultralytics' wall-clock "time" column stays out (the history is a DVC output)
        rows = [
            {k.strip(): float(v) for k, v in row.items() if v not in ("", None) and k.strip() != "time"}
            for row in csv.DictReader(fh)
        ]
    return [{HISTORY_RENAME.get(k, k): v for k, v in row.items()} for row in rows]


def _write_history(history: list[dict], csv_path: Path, png_path: Path) -> None:
    import csv
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    with atomic_path(csv_path) as tmp:
        tmp.write_text(buf.getvalue())
    groups = [
        ("train losses", [k for k in keys if k.startswith("train/")]),
        ("validation losses", [k for k in keys if k.startswith("val/") and k.endswith("_loss")]),
        ("detection", ["val/ap50", "val/ap50_95", "val/precision", "val/recall"]),
        ("NME, % (lower is better)", ["val/" + NME_KEY, "val/" + NME68_KEY, "val/" + NME68_ANCHOR_KEY]),
        ("failure rate (lower is better)", ["val/fr"]),
    ]
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6))
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    for ax, (title, names) in zip(axes, groups):
        for name in names:
            if any(name in row for row in history):
                ax.plot(epochs, [row.get(name, float("nan")) for row in history], label=name.split("/", 1)[1])
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def _predictions_picture(detector, images: Path, heads: Path, split: str, out: Path, n: int = 4) -> None:
    """Predictions (top row) and ground truth (bottom row) on the first ``n`` images of ``split``."""
    import numpy as np
    from PIL import Image

    from ..io import atomic_path
    from ..core.images import load_rgb
    from ..model.dataset import load_manifest
    from ..model.overlays import ground_truth_overlay, overlay

    items = load_manifest(images, heads, split, max_images=n)
    tops, bottoms = [], []
    for it in items:
        img = load_rgb(it["im_file"])
        tops.append(overlay(img, detector(img), detector.geometry.faces, min_side=240))
        bottoms.append(ground_truth_overlay(img, it["boxes"], it["landmarks"], min_side=240))
    if not tops:
        return
    h = max(t.shape[0] for t in tops)
    pad = lambda a: np.pad(a, ((0, h - a.shape[0]), (0, 0), (0, 0)))
    grid = np.concatenate([np.concatenate([pad(t) for t in tops], 1), np.concatenate([pad(b) for b in bottoms], 1)], 0)
    with atomic_path(out) as tmp:
        Image.fromarray(grid).save(tmp)


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    images: Path = flag("images manifest (images.parquet)")
    heads: Path = flag("heads manifest (heads.parquet)")
    head_model: Path = flag("head-model file (.npz or FLAME .pkl)")
    out_dir: Path = flag("writes model.safetensors, model.json, model.onnx here")
    metrics: Path = flag("metrics JSON to write")
    plots: Path = flag("directory for history.csv, curves.png, predictions.png")
    work_dir: Path = flag("the ultralytics run (checkpoints, results.csv), kept across a killed job for resuming")
    threads: int | None = flag(
        "torch CPU threads (the rule passes its threads; default: OMP_NUM_THREADS or torch's default)", None
    )
    init_weights: Path | None = flag("trained head detector to start from (train.init: detector)", None)


def train(params: dict, job: TrainJob) -> dict:
    """Train (or resume), export and log; returns the metrics written to ``job.metrics``.

    ``job.threads``: torch's CPU threads (default: what torch has now, e.g. OMP_NUM_THREADS as Snakemake
    sets it); ``job.init_weights``: the head detector to start from when ``train.init`` is ``detector``.
    """
    import torch

    from ..errors import InputError
    from ..io import write_json
    from ..model.config import ModelConfig
    from ..model.dataset import HeadDataset, load_manifest
    from ..model.checkpoint import check_onnx, export_onnx, load_model, save_model
    from ..model.inference import HeadDetector
    from ..model.loss import LossSettings
    from ..model.network import HeadDetectionModel
    from ..model.trainer import HeadTrainer
    from ..model.validator import evaluate
    from ..tracking import log_run

    start = time.perf_counter()
    images, heads, head_model = Path(job.images), Path(job.heads), Path(job.head_model)
    if not load_manifest(images, heads, "train", max_images=1):
        raise InputError(f"{images}: no image with split 'train'; the detector needs training images")
    out_dir, plots_dir, work_dir = Path(job.out_dir), Path(job.plots), Path(job.work_dir)
    threads = int(job.threads or torch.get_num_threads())
    init = params["train"]["init"]
    if init == "detector" and job.init_weights is None:
        raise InputError(
            "train.init is 'detector' but no --init-weights (the head detector, "
            "data/detector/head_detector.pt) was given"
        )
    init_weights = Path(job.init_weights) if init == "detector" else None
    arch = ModelConfig.from_params(params, head_model)
    loss = LossSettings.from_params(params["train"]["loss"])
    run_dir = work_dir / "run"
    state_path = work_dir / "state.json"
    fingerprint = _fingerprint(params, images, heads, head_model, init_weights, threads)
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    last = run_dir / "weights" / "last.pt"
    if state.get("fingerprint") != fingerprint:
        if work_dir.exists():
            log.info("inputs or params changed since the run in %s: starting afresh", work_dir)
            shutil.rmtree(work_dir)
        work_dir.mkdir(parents=True)
        write_json(state_path, {"fingerprint": fingerprint, "finished": False})
        state = {"fingerprint": fingerprint, "finished": False}
    if state.get("finished") or (last.exists() and _checkpoint_epoch(last) < 0):
        log.info("training already finished in %s: exporting its best checkpoint", run_dir)
        resumed_after = None
        trainer = None
    else:
        overrides = _overrides(params, arch, run_dir)
        resumed_after = None
        if last.exists():
            resumed_after = _checkpoint_epoch(last) + 1
            overrides["resume"] = str(last)
            log.info("resuming %s from epoch %d", run_dir, resumed_after + 1)
        trainer = HeadTrainer(
            arch,
            images,
            heads,
            loss,
            overrides=overrides,
            max_images=params["train"]["max_images"],
            ema_decay=params["train"]["ema_decay"],
            ema_tau=params["train"]["ema_tau"],
            threads=threads,
            init_weights=init_weights,
            bn_images=params["train"]["bn_images"],
            crop=params["train"]["crop"],
        )
        trainer.train()
        write_json(state_path, {"fingerprint": fingerprint, "finished": True, "val_on_train": trainer.val_on_train})
        state = json.loads(state_path.read_text())

    # the best checkpoint -> safetensors + ONNX
    from ultralytics.nn.tasks import load_checkpoint

    best = run_dir / "weights" / "best.pt"
    model, _ = load_checkpoint(best if best.exists() else last)
    weights, config_json = save_model(model, out_dir / "model.safetensors")
    model = load_model(weights)
    onnx_path = export_onnx(model, out_dir / "model.onnx")
    onnx_check = check_onnx(model, onnx_path)
    bad = {k: v for k, v in onnx_check.items() if k in ONNX_TOLERANCE and not v <= ONNX_TOLERANCE[k]}
    if bad:
        raise RuntimeError(f"ONNX export differs from torch beyond tolerance {ONNX_TOLERANCE}: {bad}")

    # final validation of the exported weights, and of the untrained network (same seed) for comparison
    val_split = "train" if state.get("val_on_train") else "val"
    val_set = HeadDataset(images, heads, val_split, imgsz=arch.imgsz)
    t = params["train"]
    final = evaluate(model, val_set, conf=t["val_conf"], iou=t["nms_iou"])
    torch.manual_seed(params["seed"])
    untrained = evaluate(HeadDetectionModel(arch), val_set, conf=t["val_conf"], iou=t["nms_iou"])

    history = _history(run_dir / "results.csv")
    _write_history(history, plots_dir / "history.csv", plots_dir / "curves.png")
    detector = HeadDetector(out_dir, conf=0.25, iou=t["nms_iou"])
    _predictions_picture(detector, images, heads, val_split, plots_dir / "predictions.png")

    metrics = {
        "val": final,
        "untrained": untrained,
        "val_split": val_split,
        "val_images": len(val_set),
        "train_images": len(HeadDataset(images, heads, "train", imgsz=arch.imgsz, max_images=t["max_images"])),
        "epochs": len(history),
        "onnx": onnx_check,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "threads": threads,
        "init": init,
    }
    metrics = _finite(metrics)
    write_json(job.metrics, metrics)  # no wall-clock field: DVC hashes this file (the time goes to MLflow and the log)
    seconds = round(time.perf_counter() - start, 2)
    steps = [
        (int(row.get("epoch", i + 1)), {k: v for k, v in row.items() if k not in ("epoch", "time")})
        for i, row in enumerate(history)
    ]
    log_run(
        "train",
        params,
        metrics={**metrics, "seconds": seconds, "resumed_after_epoch": resumed_after},
        run_params={"model": params["model"], "train": params["train"]},
        step_metrics=steps,
        artifacts=[
            weights,
            config_json,
            onnx_path,
            job.metrics,
            plots_dir / "curves.png",
            plots_dir / "predictions.png",
        ],
    )
    log.info(
        "trained %s in %.1f s on %d threads: val AP50 %.3f (untrained %.3f), NME68 %.2f %% (untrained %.2f %%), "
        "NME %.2f %%, FR %.3f",
        arch.ultralytics_yaml,
        seconds,
        threads,
        final["ap50"],
        untrained["ap50"],
        final[NME68_KEY] if final[NME68_KEY] is not None else float("nan"),
        untrained[NME68_KEY] if untrained[NME68_KEY] is not None else float("nan"),
        final[NME_KEY] if final[NME_KEY] is not None else float("nan"),
        final["fr"],
    )
    return metrics


def _cli(job: TrainJob) -> int:
    from ..config import load_params

    train(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "train",
        TrainJob,
        _cli,
        help="train the multi-task head detector on the manifests; export safetensors + ONNX",
        description=__doc__,
    )
