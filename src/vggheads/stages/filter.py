"""Stage ``filter``: the paper's four image filters (section 1.7), each switchable.

Per image, in the paper's order, the first failing rule is the reason it is dropped:
``no_heads`` (the detector found none), ``flip_count`` (the detector, run again on the
horizontally flipped image, counts differently), ``face_without_head`` (a face of the face
detector overlaps no head box), ``split_count`` (left + right halves of the vertical split nearest
the centre that cuts no box count differently). Unreadable images are dropped as ``unreadable``.
One row per image (schema ``filter``, with the paper's unthresholded flip "stability" score);
counts per reason and the yield in the stats JSON.

Head-mesh renders (``render.sdxl.conditioning: head-mesh`` / ``pose+head-mesh``) carry the exact
truth of the scene they were painted around; a fifth rule, ``agreement``
(:mod:`vggheads.filtering.agreement`, ``filter.agreement``), drops those whose detected heads (and
landmarks: those of ``filter.agreement.labeller`` run here on the scene's boxes, or of
``labels.labeller`` when it reads the image) disagree with the scene's. The head detector's
boxes are the detections, or, when ``detector.oracle`` wrote the scene's boxes there, the detector
run here. Per image and per scene head the figures go to ``--agreement`` / ``--agreement-heads``
(empty tables for other renders), their summary to the stats JSON.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..jobs import add_command, flag

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FilterJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    shard: str = flag("shard id, e.g. 00000")
    render_table: Path = flag("render parquet of the shard")
    images: Path = flag("the shard's image folder")
    detections: Path = flag("detections parquet of the shard")
    weights: Path = flag("detector weights (the flip and split rules rerun it)")
    out: Path = flag("filter parquet to write")
    stats: Path = flag("stats JSON to write")
    truth: Path | None = flag("render_heads parquet (head-mesh renders: the scene's truth)", None)
    labels: Path | None = flag("labels parquet (head-mesh renders: landmark agreement)", None)
    agreement: Path | None = flag("per-image agreement parquet to write (empty unless head-mesh)", None)
    agreement_heads: Path | None = flag("per-head agreement parquet to write (empty unless head-mesh)", None)
    head_model: Path | None = flag("head model (filter.agreement.labeller)", None)


def filter_shard(params: dict, job: FilterJob) -> dict:
    """Filter one shard; returns the stats written to ``job.stats``.

    ``job.truth`` / ``job.labels``: the render_heads and labels tables (the agreement rule of head-mesh
    renders); ``job.agreement`` / ``job.agreement_heads``: where its per-image / per-head tables go;
    ``job.head_model``: for ``filter.agreement.labeller``."""
    from tqdm import tqdm

    from ..core.images import load_rgb
    from ..errors import InputError
    from ..filtering.rules import REASONS, check_image
    from ..io import write_json
    from ..schemas import from_rows, read_table, write_table
    from ..tracking import log_run
    from ..detection.tables import detections_by_sample

    cfg = params["filter"]
    rules = {r: bool(cfg[r]) for r in ("no_heads", "flip", "face", "split")}
    rows = read_table(job.render_table, "render", columns=["sample_id", "image"]).to_pylist()
    detections = detections_by_sample(read_table(job.detections, "detections"))
    detector = None
    agree = _agreement_setup(params, job.truth, job.labels, job.head_model)
    if rules["flip"] or rules["split"] or (agree and params["detector"]["oracle"]):
        from ..detection.infer import HeadBoxDetector

        detector = HeadBoxDetector.from_params(job.weights, params["detector"])
    find_faces = None
    if rules["face"]:
        from ..filtering.faces import FaceDetector

        find_faces = FaceDetector(cfg["face_detector"], min_score=cfg["face_score"], min_face_size=cfg["min_face_size"])
    counts = {r: 0 for r in REASONS}
    out_rows, stability = [], []
    start = time.perf_counter()
    for row in tqdm(rows, desc=f"filter {job.shard}", unit="image"):
        sid = row["sample_id"]
        boxes = detections.get(sid, (np.zeros((0, 4)), None))[0]
        try:
            image = load_rgb(Path(job.images) / row["image"])
        except InputError as exc:
            log.warning("dropped: %s", exc)
            counts["unreadable"] += 1
            out_rows.append(
                {
                    "sample_id": sid,
                    "keep": False,
                    "reason": "unreadable",
                    "n_heads": len(boxes),
                    "stability": float("nan"),
                }
            )
            continue
        res = check_image(image, boxes, detector, find_faces, rules, cfg["min_split_side"])
        if agree:
            _agreement_rule(agree, sid, image, boxes, detector, res)
        if res.reason:
            counts[res.reason] += 1
        if np.isfinite(res.stability):
            stability.append(res.stability)
        out_rows.append(
            {
                "sample_id": sid,
                "keep": res.keep,
                "reason": res.reason,
                "n_heads": res.n_heads,
                "stability": res.stability,
            }
        )
    kept = sum(r["keep"] for r in out_rows)
    stats = {
        "images": len(rows),
        "kept": kept,
        "dropped": len(rows) - kept,
        "reasons": counts,
        "yield": round(kept / len(rows), 4) if rows else None,
        "rules": rules,
        "face_detector": cfg["face_detector"] if rules["face"] else None,
        "mean_flip_stability": round(float(np.mean(stability)), 4) if stability else None,
    }
    seconds = round(time.perf_counter() - start, 3)  # log and MLflow only: artefacts hold no wall-clock figures
    if rows and not kept:  # the shard gives the manifest nothing: say why here
        stats["why_empty"] = "every image was dropped: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
        log.warning("shard %s: %s", job.shard, stats["why_empty"])
    stats["agreement"] = _agreement_write(agree, job.agreement, job.agreement_heads)
    write_table(from_rows("filter", out_rows), job.out, "filter")
    write_json(job.stats, stats)
    log_run("filter", params, shard=job.shard, metrics={**stats, "seconds": seconds}, run_params={"filter": cfg})
    log.info(
        "shard %s: kept %d of %d images; dropped %s; %.1f s",
        job.shard,
        kept,
        len(rows),
        {k: v for k, v in counts.items() if v},
        seconds,
    )
    return stats


def _agreement_setup(params: dict, truth: Path | None, labels: Path | None, head_model: Path | None) -> dict | None:
    """What the agreement rule needs, or None when the images are not head-mesh renders."""
    from ..errors import ConfigError
    from ..filtering.agreement import head_mesh_render, scene_by_sample
    from ..schemas import read_table

    if not head_mesh_render(params):
        return None
    if truth is None:
        raise ConfigError(
            "render.sdxl.conditioning is a head-mesh mode: the filter stage needs the render's heads "
            "table (--truth data/render/<shard>.heads.parquet) for filter.agreement"
        )
    acfg = params["filter"]["agreement"]
    out = {
        "cfg": acfg,
        "scene": scene_by_sample(read_table(truth, "render_heads")),
        "labels": {},
        "oracle": bool(params["detector"]["oracle"]),
        "rows": [],
        "heads": [],
        "labeller": None,
    }
    if acfg["labeller"]:  # a labeller of its own, run on the scene's boxes
        from ..geometry import FlameLayer
        from ..headmodel import load_head_model
        from ..labelling.factory import build_labeller

        if head_model is None:
            raise ConfigError(
                f"filter.agreement.labeller is '{acfg['labeller']}': the filter stage needs the head "
                f"model (--head-model)"
            )
        model = load_head_model(head_model)
        out["labeller"] = build_labeller(acfg["labeller"], params["labels"], model, None, head_model)
        out["layer"] = FlameLayer(model)
        out["extension"] = params["labels"]["crop_extension"]
    elif labels is not None:  # landmarks of a labeller that reads the image (the truth labeller copies the scene)
        table = read_table(labels, "labels", columns=["sample_id", "box", "landmarks", "labeller"]).to_pydict()
        for sid, box, lm, name in zip(table["sample_id"], table["box"], table["landmarks"], table["labeller"]):
            if name != "truth":
                out["labels"].setdefault(sid, ([], []))
                out["labels"][sid][0].append(box)
                out["labels"][sid][1].append(lm)
    return out


def _agreement_rule(agree: dict, sid: str, image, boxes, detector, res) -> None:
    """Measure one image against its scene; drop it (reason ``agreement``) when the paper's rules kept it
    and it disagrees beyond filter.agreement's thresholds."""
    from ..filtering.agreement import disagrees, measure

    cfg = agree["cfg"]
    found = detector([image])[0].boxes if agree["oracle"] else boxes
    lab = agree["labels"].get(sid) if agree["labeller"] is None else _label_scene(agree, sid, image)
    a = measure(agree["scene"].get(sid), found, *(lab if lab else (None, None)), min_iou=cfg["min_iou"])
    ok = not disagrees(a, cfg["min_f1"], cfg["max_nme_pct"])
    agree["rows"].append(a.row(sid, ok))
    agree["heads"] += [{"sample_id": sid, **h} for h in a.heads]
    if cfg["enabled"] and res.keep and not ok:
        res.keep, res.reason = False, "agreement"


def _label_scene(agree: dict, sid: str, image):
    """filter.agreement.labeller on the scene's own boxes: (boxes, (N, 68, 3) landmarks), NaN where it failed."""
    from ..labelling.base import decode_labels
    from ..labelling.crops import extend_boxes

    scene = agree["scene"].get(sid)
    if scene is None or not len(scene.boxes):
        return None
    H, W = image.shape[:2]
    labels = agree["labeller"](image, sid, scene.boxes, extend_boxes(scene.boxes, agree["extension"], W, H))
    landmarks = np.full((len(scene.boxes), 68, 3), np.nan)
    if labels.landmarks is not None:
        landmarks[labels.ok] = labels.landmarks[labels.ok]
    elif labels.ok.any():
        landmarks[labels.ok] = decode_labels(labels.params[labels.ok], agree["layer"]).landmarks
    return scene.boxes, landmarks


def _agreement_write(agree: dict | None, out: Path | None, out_heads: Path | None) -> dict | None:
    from ..filtering.agreement import summary
    from ..schemas import from_rows, write_table

    rows, heads = (agree["rows"], agree["heads"]) if agree else ([], [])
    if out is not None:
        write_table(from_rows("agreement", rows), out, "agreement")
    if out_heads is not None:
        write_table(from_rows("agreement_heads", heads), out_heads, "agreement_heads")
    return summary(rows, heads) if agree else None


def _cli(job: FilterJob) -> int:
    from ..config import load_params

    filter_shard(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "filter",
        FilterJob,
        _cli,
        help="drop images by the paper's four rules",
        description=__doc__,
    )
