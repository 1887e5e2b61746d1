"""Stage ``label_3dmm``: 3DMM pseudo-labels for every detected head of a shard (paper 1.6).

Per detection: the box extended by ``labels.crop_extension`` (25 %) per side and clipped, then
the labeller ``labels.labeller`` (``truth``, ``dad3dnet``, ``model`` or ``landmark-fit``),
optionally refined by the landmark fit (``labels.refine``). Output per head (schema ``labels``):
box, extended box, score, 413 parameters in image pixels, 68 landmarks (decoded from the
parameters through the head model; exact with visibility for ``truth``), yaw/pitch/roll.

Label quality: on procedural renders, the labels (and those of ``labels.quality_labellers``, on
the same detections) are scored against the exact truth (:mod:`vggheads.labelling.quality`);
the per-shard sums go to the stats JSON and MLflow, ``build_manifest`` gathers them into
``metrics/label_quality.json``. Unreadable images and heads a labeller cannot label are counted
drops.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.metrics import NME_KEY, POSE_MAE_KEY
from ..core.param_layout import N_PARAMS
from ..jobs import add_command, flag

log = logging.getLogger(__name__)


class _Collected:
    """Heads labelled by one labeller over the shard, decoded in batches at the end."""

    def __init__(self):
        self.image_of: list[int] = []
        self.det_index: list[int] = []
        self.params: list[np.ndarray] = []
        self.landmarks: list[np.ndarray | None] = []

    def add(self, image_index: int, labels) -> None:
        for d in np.flatnonzero(labels.ok):
            self.image_of.append(image_index)
            self.det_index.append(int(d))
            self.params.append(labels.params[d])
            self.landmarks.append(None if labels.landmarks is None else labels.landmarks[d])

    def decode(self, layer):
        from ..labelling.base import decode_labels

        params = np.asarray(self.params, dtype=np.float32).reshape(-1, N_PARAMS)
        dec = decode_labels(params, layer)
        for i, lm in enumerate(self.landmarks):
            if lm is not None and np.isfinite(lm).all():
                dec.landmarks[i] = lm
        return params, dec


@dataclass(frozen=True, kw_only=True)
class Label3dmmJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    shard: str = flag("shard id, e.g. 00000")
    render_table: Path = flag("render parquet of the shard")
    images: Path = flag("the shard's image folder")
    detections: Path = flag("detections parquet of the shard")
    truth: Path = flag("render_heads parquet (procedural truth; may be empty)")
    head_model: Path = flag("head model (.npz or FLAME .pkl)")
    out: Path = flag("labels parquet to write")
    stats: Path = flag("stats JSON to write (with label quality)")


def label_3dmm(params: dict, job: Label3dmmJob) -> dict:
    """Label one shard; returns the stats written to ``job.stats``."""
    from tqdm import tqdm

    from ..geometry import FlameLayer
    from ..headmodel import load_head_model
    from ..io import write_json
    from ..labelling.crops import extend_boxes
    from ..labelling.factory import build_labeller, landmark_fitter
    from ..labelling.landmark_fit import refine_labels
    from ..labelling.quality import QualityAccumulator
    from ..labelling.truth import truth_by_sample
    from ..schemas import from_rows, read_table, write_table
    from ..tracking import log_run
    from ..core.images import iter_images
    from ..detection.tables import detections_by_sample

    cfg = params["labels"]
    rows = read_table(job.render_table, "render", columns=["sample_id", "image", "width", "height"]).to_pylist()
    detections = detections_by_sample(read_table(job.detections, "detections"))
    truth_table = read_table(job.truth, "render_heads")
    has_truth = truth_table.num_rows > 0 or params["render"]["backend"] == "procedural"
    truth = truth_by_sample(truth_table) if has_truth else None
    head_model = load_head_model(job.head_model)
    layer = FlameLayer(head_model)
    main_name = cfg["labeller"]
    labeller = build_labeller(main_name, cfg, head_model, truth, job.head_model)
    extra = {}
    if has_truth:
        extra = {
            name: build_labeller(name, cfg, head_model, truth, job.head_model)
            for name in cfg["quality_labellers"]
            if name != main_name
        }
    fitter = landmark_fitter(cfg, head_model) if cfg["refine"] else None
    name = main_name + ("+refine" if fitter is not None else "")

    stats: dict = {
        "images": len(rows),
        "unreadable": 0,
        "unreadable_ids": [],
        "detections": 0,
        "labelled": 0,
        "dropped": {},
        "refined": 0,
        "labeller": name,
    }
    collected = {name: _Collected(), **{n: _Collected() for n in extra}}
    meta = []  # per readable image: (sample id, boxes, scores, extended)
    seconds = {n: 0.0 for n in collected}
    with tqdm(total=len(rows), desc=f"label {job.shard} ({name})", unit="image") as bar:
        for chunk in iter_images(rows, job.images, 8, stats):
            for row, image in chunk:
                sid = row["sample_id"]
                boxes, scores = detections.get(sid, (np.zeros((0, 4)), np.zeros(0)))
                H, W = image.shape[:2]
                ext = extend_boxes(boxes, cfg["crop_extension"], W, H)
                idx = len(meta)
                meta.append((sid, boxes, scores, ext))
                stats["detections"] += len(boxes)
                t0 = time.perf_counter()
                labels = labeller(image, sid, boxes, ext)
                if fitter is not None and labels.ok.any():
                    points, _ = fitter.landmarks(image, boxes, ext)
                    labels.landmarks = None  # refined parameters: landmarks are decoded again
                    labels, changed = refine_labels(labels, points, fitter, layer)
                    stats["refined"] += changed
                seconds[name] += time.perf_counter() - t0
                for reason in labels.reasons:
                    if reason:
                        stats["dropped"][reason] = stats["dropped"].get(reason, 0) + 1
                collected[name].add(idx, labels)
                for n, other in extra.items():
                    t0 = time.perf_counter()
                    collected[n].add(idx, other(image, sid, boxes, ext))
                    seconds[n] += time.perf_counter() - t0
            bar.update(len(chunk))

    quality = {}
    out_rows = []
    for n, col in collected.items():
        t0 = time.perf_counter()
        p, dec = col.decode(layer)
        seconds[n] += time.perf_counter() - t0
        if n == name:
            for k, (i, d) in enumerate(zip(col.image_of, col.det_index)):
                sid, boxes, scores, ext = meta[i]
                out_rows.append(
                    {
                        "sample_id": sid,
                        "head": d,
                        "box": boxes[d].astype(np.float32),
                        "extended_box": ext[d],
                        "score": float(scores[d]),
                        "flame_params": p[k],
                        "landmarks": dec.landmarks[k],
                        "yaw": float(dec.yaw[k]),
                        "pitch": float(dec.pitch[k]),
                        "roll": float(dec.roll[k]),
                        "labeller": name,
                    }
                )
        if has_truth:
            acc = QualityAccumulator(cfg["match_iou"])
            by_image: dict[int, list[int]] = {}
            for k, i in enumerate(col.image_of):
                by_image.setdefault(i, []).append(k)
            angles = np.stack([dec.yaw, dec.pitch, dec.roll], axis=1) if len(p) else np.zeros((0, 3))
            for i, (sid, boxes, _, _) in enumerate(meta):
                ks = by_image.get(i, [])
                dets = [col.det_index[k] for k in ks]
                acc.add(truth.get(sid), boxes, boxes[dets], p[ks], dec.landmarks[ks], angles[ks])
            quality[n] = {"state": acc.state(), "metrics": acc.metrics()}
        quality.setdefault(n, {})
    # labelling speed goes to the log and MLflow only: artefacts hold no wall-clock figures
    speed = {n: round(len(col.params) / seconds[n], 3) if seconds[n] > 0 else None for n, col in collected.items()}
    stats["labelled"] = len(out_rows)
    stats["quality"] = quality
    if not stats["labelled"]:  # the shard gives the manifest nothing: say why here
        stats["why_empty"] = (
            f"no detections to label (data/detections/{job.shard}.stats.json)"
            if not stats["detections"]
            else f"{name} labelled none of the {stats['detections']} detections: dropped "
            + (", ".join(f"{k} {v}" for k, v in sorted(stats["dropped"].items())) or "all")
        )
        log.warning("shard %s: %s", job.shard, stats["why_empty"])
    if fitter is not None or main_name == "landmark-fit":
        src = (fitter or labeller).face_sources
        stats["face_rectangles"] = dict(src)
    write_table(from_rows("labels", out_rows), job.out, "labels")
    write_json(job.stats, stats)
    summary = {k: v for k, v in stats.items() if k != "quality"}
    summary["seconds"] = {n: round(s, 3) for n, s in seconds.items()}
    summary["quality"] = {n: q.get("metrics", {}) | {"heads_per_second": speed[n]} for n, q in quality.items()}
    log_run("label_3dmm", params, shard=job.shard, metrics=summary, run_params={"labels": cfg})
    main_q = quality.get(name, {}).get("metrics")
    if main_q and main_q[NME_KEY] is not None:
        log.info(
            "shard %s: %d heads labelled by %s; vs truth: detection recall %.3f, NME %.2f %%, pose MAE %.2f deg",
            job.shard,
            stats["labelled"],
            name,
            main_q["detection_recall"] or 0,
            main_q[NME_KEY],
            main_q["pose_" + POSE_MAE_KEY],
        )
    else:
        log.info("shard %s: %d heads labelled by %s", job.shard, stats["labelled"], name)
    log.info("labelling speed (heads/s): %s", speed)
    return stats


def _cli(job: Label3dmmJob) -> int:
    from ..config import load_params

    label_3dmm(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "label-3dmm",
        Label3dmmJob,
        _cli,
        help="3DMM pseudo-labels for the detected heads of a shard",
        description=__doc__,
    )
