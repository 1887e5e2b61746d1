"""Stage ``detect_heads``: run the trained head detector on every image of a shard (paper 1.5).

Plain resize to ``detector.imgsz`` (the paper's RT-DETR inference), score > ``score_threshold``,
greedy NMS at ``nms_iou`` (paper: 0.5 / 0.5). One row per head (schema ``detections``); an
unreadable image is a counted drop (no row), an image without heads simply has no row.

``detector.oracle: true`` (procedural renders only) writes the exact truth boxes instead, score
1: tests and ablations that isolate the labeller and the filter from the detector.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..jobs import add_command, flag

log = logging.getLogger(__name__)


class OracleDetector:
    """The exact truth boxes of procedural renders, in the detector's interface (score 1)."""

    def __init__(self, truth_table):
        from ..labelling.truth import truth_by_sample

        self.truth = truth_by_sample(truth_table)

    def boxes(self, sample_id: str):
        from ..detection.infer import Detections

        t = self.truth.get(sample_id)
        boxes = np.zeros((0, 4), np.float32) if t is None else t.boxes.astype(np.float32)
        return Detections(boxes, np.ones(len(boxes), np.float32))


@dataclass(frozen=True, kw_only=True)
class DetectHeadsJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    shard: str = flag("shard id, e.g. 00000")
    render_table: Path = flag("render parquet of the shard")
    images: Path = flag("the shard's image folder")
    weights: Path = flag("detector weights from train_head_detector")
    truth: Path | None = flag("render_heads parquet (used by detector.oracle)", None)
    out: Path = flag("detections parquet to write")
    stats: Path = flag("stats JSON to write")


def detect_heads(params: dict, job: DetectHeadsJob) -> dict:
    """Detect the heads of one shard; returns the stats written to ``job.stats``."""
    from tqdm import tqdm

    from ..core.images import iter_images
    from ..detection.infer import HeadBoxDetector
    from ..errors import ConfigError
    from ..io import write_json
    from ..schemas import from_rows, read_table, write_table
    from ..tracking import log_run

    cfg = params["detector"]
    rows = read_table(job.render_table, "render", columns=["sample_id", "image", "width", "height"]).to_pylist()
    if cfg["oracle"]:
        truth_table = read_table(job.truth, "render_heads") if job.truth is not None else None
        if truth_table is None or (truth_table.num_rows == 0 and params["render"]["backend"] != "procedural"):
            raise ConfigError(
                "detector.oracle needs the exact truth of procedural renders (render.backend: procedural)"
            )
        oracle = OracleDetector(truth_table)
        detector = lambda chunk: [oracle.boxes(row["sample_id"]) for row, _ in chunk]  # noqa: E731
    else:
        model = HeadBoxDetector.from_params(job.weights, cfg)
        detector = lambda chunk: model([im for _, im in chunk])  # noqa: E731
    stats = {"images": len(rows), "unreadable": 0, "unreadable_ids": [], "heads": 0, "images_without_heads": 0}
    out_rows = []
    start = time.perf_counter()
    with tqdm(total=len(rows), desc=f"detect {job.shard}", unit="image") as bar:
        for chunk in iter_images(rows, job.images, cfg["batch"], stats):
            for (row, _), found in zip(chunk, detector(chunk)):
                stats["heads"] += len(found)
                stats["images_without_heads"] += int(len(found) == 0)
                for k, (box, score) in enumerate(zip(found.boxes, found.scores)):
                    out_rows.append({"sample_id": row["sample_id"], "head": k, "box": box, "score": float(score)})
            bar.update(len(chunk))
    seconds = round(time.perf_counter() - start, 3)  # log and MLflow only: artefacts hold no wall-clock figures
    stats["oracle"] = bool(cfg["oracle"])
    read = stats["images"] - stats["unreadable"]
    stats["heads_per_image"] = round(stats["heads"] / read, 4) if read else 0.0
    if not stats["heads"]:  # every later stage of the shard will be empty: say why here
        stats["why_empty"] = (
            "no image"
            if not stats["images"]
            else "no readable image"
            if not read
            else f"the detector found no head in any of the {read} images (score > "
            f"detector.score_threshold {cfg['score_threshold']})"
            + (
                "; render.backend tiny-sdxl draws noise with its random weights"
                if params["render"]["backend"] == "tiny-sdxl"
                else ""
            )
        )
        log.warning("shard %s: %s", job.shard, stats["why_empty"])
    write_table(from_rows("detections", out_rows), job.out, "detections")
    write_json(job.stats, stats)
    log_run(
        "detect_heads", params, shard=job.shard, metrics={**stats, "seconds": seconds}, run_params={"detector": cfg}
    )
    log.info(
        "shard %s: %d heads in %d images (%d unreadable) in %.1f s",
        job.shard,
        stats["heads"],
        read,
        stats["unreadable"],
        seconds,
    )
    return stats


def _cli(job: DetectHeadsJob) -> int:
    from ..config import load_params

    detect_heads(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "detect-heads",
        DetectHeadsJob,
        _cli,
        help="detect the heads of every image of a shard",
        description=__doc__,
    )
