"""Stage ``train_head_detector``: the binary head detector, trained on a labelled subset (paper 1.5).

The labelled subset (``detector.labelled``):

- ``procedural``: ``extra_images`` procedural scenes rendered for the detector alone (random
  skeletons, the renderer's exact full-head boxes, its own seed stream), plus ``shard_fraction``
  of the dataset's rendered images (by a hash of the sample id);
- ``coco``: a COCO json of head boxes, e.g. Labelbox's export as in the paper.

``val_fraction`` of it validates the training. The dataset's images outside the labelled subset
that carry procedural truth measure the detector honestly (recall and precision at IoU 0.5 with
the stage's thresholds): ``metrics/detector.json`` and MLflow, with ultralytics' per-epoch losses.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)


def measure(detector, items) -> dict:
    """Recall/precision/AP50 of ``detector`` on labelled images (unreadable images are counted)."""
    from ..detection.train import score_detections
    from ..core.images import load_rgb
    from ..errors import InputError

    gts, preds, scores, unreadable = [], [], [], 0
    for item in items:
        try:
            image = load_rgb(item.path)
        except InputError:
            unreadable += 1
            continue
        found = detector([image])[0]
        gts.append(item.boxes)
        preds.append(found.boxes)
        scores.append(found.scores)
    out = score_detections(gts, preds, scores)
    out["unreadable"] = unreadable
    return out


@dataclass(frozen=True, kw_only=True)
class TrainHeadDetectorJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    render_tables: list[Path] = flag(
        "render parquet of every shard (their .heads.parquet and image folders sit beside them)"
    )
    head_model: Path = flag("head model, for the extra procedural renders")
    out: Path = flag("detector weights (.pt) to write")
    metrics: Path = flag("metrics JSON to write (held-out recall/precision)")
    work_dir: Path = flag("scratch directory (removed after success)")


def train_head_detector(params: dict, job: TrainHeadDetectorJob) -> dict:
    """Train the detector, measure it, write weights + metrics; returns the metrics."""
    from ..detection.data import coco_subset, in_labelled_subset, procedural_subset, render_procedural
    from ..detection.infer import HeadBoxDetector
    from ..detection.train import train_detector
    from ..errors import ConfigError
    from ..io import write_json
    from ..render import render_paths
    from ..tracking import log_run

    cfg = params["detector"]
    lab = cfg["labelled"]
    seed = int(params["seed"])
    work_dir = Path(job.work_dir)
    start = time.perf_counter()
    shards = [render_paths(t) for t in job.render_tables]
    in_shards, held_out = procedural_subset(
        shards, lab["shard_fraction"] if lab["source"] == "procedural" else 0.0, seed
    )
    if not _has_truth(shards):
        held_out = []  # renders without truth (sdxl) cannot measure the detector
    if lab["source"] == "coco":
        if not lab["coco_json"] or not lab["coco_images"]:
            raise ConfigError("detector.labelled.source 'coco' needs detector.labelled.coco_json and coco_images")
        train, val = coco_subset(
            Path(lab["coco_json"]), Path(lab["coco_images"]), lab["val_fraction"], seed, lab["coco_category"]
        )
    else:
        extra = []
        if lab["extra_images"]:
            procedural = (params.get("render") or {}).get("procedural") or {}
            poses = params.get("poses") or {}
            extra = render_procedural(
                job.head_model,
                lab["extra_images"],
                int(poses.get("width", 512)),
                int(poses.get("height", 512)),
                work_dir / "extra",
                seed=seed,
                max_persons=int(poses.get("max_persons", 4)),
                render_cfg=procedural,
                min_confidence=float(poses.get("min_confidence", 0.3)),
            )
        labelled = extra + in_shards
        val = [i for i in labelled if in_labelled_subset("val:" + i.image_id, lab["val_fraction"], seed)]
        train = [i for i in labelled if not in_labelled_subset("val:" + i.image_id, lab["val_fraction"], seed)]
    if not train:
        from ..errors import NoDataError

        raise NoDataError(
            "train_head_detector: the labelled subset has no training image. Cause: "
            + (
                f"the COCO json {lab['coco_json']} lists no image found under {lab['coco_images']}"
                if lab["source"] == "coco"
                else f"detector.labelled.extra_images is {lab['extra_images']} and detector.labelled."
                f"shard_fraction {lab['shard_fraction']} of the shards' procedural renders gave none"
            )
            + ". Change: detector.labelled.extra_images (e.g. 150), or detector.labelled.source: coco "
            "with a COCO json of head boxes"
        )
    result = train_detector(cfg, train, val, job.out, work_dir / "ultralytics", seed)
    detector = HeadBoxDetector.from_params(job.out, cfg)
    metrics = {
        "labelled": {
            "train_images": len(train),
            "train_heads": int(sum(len(i.boxes) for i in train)),
            "val_images": len(val),
            "source": lab["source"],
        },
        "val": measure(detector, val) if val else {},
        "heldout": measure(detector, held_out) if held_out else {},
        "score_threshold": cfg["score_threshold"],
        "nms_iou": cfg["nms_iou"],
    }
    seconds = round(time.perf_counter() - start, 1)  # log and MLflow only: artefacts hold no wall-clock figures
    write_json(job.metrics, metrics)
    log_run(
        "train_head_detector",
        params,
        metrics={**metrics, "seconds": seconds},
        run_params={"detector": cfg},
        step_metrics=result["curves"],
        artifacts=[job.metrics],
    )
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info("detector trained in %.1f s", seconds)
    held = metrics["heldout"]
    if held:
        log.info(
            "detector on %d held-out images (%d heads): recall %.3f, precision %.3f",
            held["images"],
            held["heads"],
            held["recall"],
            held["precision"],
        )
    return metrics


def _has_truth(shards) -> bool:
    """Whether the shards carry procedural truth (a non-empty render_heads table)."""
    import pyarrow.parquet as pq

    return any(Path(h).exists() and pq.ParquetFile(h).metadata.num_rows > 0 for _, h, _ in shards)


def _cli(job: TrainHeadDetectorJob) -> int:
    from ..config import load_params
    from ..offline import configure

    configure()
    train_head_detector(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "train-head-detector",
        TrainHeadDetectorJob,
        _cli,
        help="train the binary head detector on a labelled subset",
        description=__doc__,
    )
