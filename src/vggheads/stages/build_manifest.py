"""Stage ``build_manifest``: every shard into ``images.parquet`` + ``heads.parquet`` (paper 1.8).

Images the filter kept with at least one labelled head; splits by shard (the first
``manifest.val_shards`` are validation, as the release's split_00000-00001). Also writes the
dataset card (``metrics/dataset_card.json``; CSV + PNG histograms under ``plots/dataset/``) and
gathers the per-shard label quality of ``label_3dmm`` into ``metrics/label_quality.json``; all
of it goes to MLflow too. Schemas, fixed-size list columns and the schema version are in
:mod:`vggheads.schemas`; docs/dataset.md shows how to read the files.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)


def gather_label_quality(stats_paths: list[Path]) -> dict:
    """Merge the per-shard label-quality sums of ``label_3dmm`` stats files, per labeller."""
    from ..errors import InputError
    from ..labelling.quality import QualityAccumulator

    states: dict[str, list] = {}
    main = None
    for path in stats_paths:
        try:
            stats = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: not a readable label_3dmm stats file ({exc})") from None
        main = main or stats.get("labeller")
        for name, q in (stats.get("quality") or {}).items():
            if "state" in q:
                states.setdefault(name, []).append(q["state"])
    out: dict = {"labeller": main, "available": bool(states)}
    for name, sts in states.items():
        out[name] = QualityAccumulator.merge(sts).metrics()
    return out


# filter reason -> the setting that switches its rule off
FILTER_SETTINGS = {
    "no_heads": "filter.no_heads",
    "flip_count": "filter.flip",
    "face_without_head": "filter.face",
    "split_count": "filter.split",
    "agreement": "filter.agreement",
}


def explain_no_images(card: dict, params: dict, truth_heads: int | None = None) -> str:
    """Why the shards gave the manifest no image, from the dataset card's counts (and the procedural
    renders' truth head count): the cause and the setting to change."""
    backend = params["render"]["backend"]
    rendered, reasons = card["rendered_images"], card["filter"]["reasons"]
    dropped = sum(reasons.values())
    if not rendered or truth_heads == 0:
        poses = params["poses"]
        hint = (
            f"poses.ultralytics.conf (now {poses['ultralytics']['conf']}), poses.ultralytics.images and "
            f"poses.ultralytics.weights"
            if poses["backend"] == "ultralytics"
            else "captions and dataset settings"
        )
        made = "no image" if not rendered else "images without a head"
        return (
            f"Cause: render made {made}, because extract_poses found no person (data/poses/*.stats.json and "
            f"data/captions/*.stats.json say why). Change: {hint}."
        )
    if reasons.get("no_heads", 0) == dropped == rendered:
        if backend == "tiny-sdxl":
            change = (
                "render.backend: tiny-sdxl draws noise with its random weights, which holds no heads: use "
                "render.backend: procedural (or sdxl with real weights) for a run that reaches train"
            )
        else:
            d = params["detector"]
            change = (
                f"a lower detector.score_threshold (now {d['score_threshold']}) or a better detector "
                f"(detector.epochs {d['epochs']}, detector.imgsz {d['imgsz']}; metrics/detector.json)"
            )
        return (
            f"Cause: detect_heads found no head in any of the {rendered} rendered images, and the filter "
            f"dropped them all as no_heads (data/detections/*.stats.json). Change: {change}."
        )
    if dropped == rendered:
        rules = ", ".join(
            f"{r} {n} ({FILTER_SETTINGS.get(r, 'unreadable images')})" for r, n in sorted(reasons.items())
        )
        return (
            f"Cause: the filter dropped all {rendered} rendered images: {rules}. Change: switch the rule off "
            f"with the setting named, or see data/filter/*.stats.json."
        )
    return (
        f"Cause: label_3dmm labelled none of the heads of the {rendered - dropped} images the filter kept "
        f"(labels.labeller: {params['labels']['labeller']}; data/labels/*.stats.json says why). Change: another "
        f"labels.labeller, or labels.match_iou (now {params['labels']['match_iou']})."
    )


def _truth_heads(render_tables: list[Path], params: dict) -> int | None:
    """Heads in the procedural renders' exact truth (None for other backends, which have none)."""
    import pyarrow.parquet as pq

    from ..render import render_paths

    if params["render"]["backend"] != "procedural":
        return None
    return sum(pq.ParquetFile(render_paths(Path(r))[1]).metadata.num_rows for r in render_tables)


@dataclass(frozen=True, kw_only=True)
class BuildManifestJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    shards: list[str] = flag("shard ids, in order")
    render_tables: list[Path] = flag("render parquet per shard")
    labels: list[Path] = flag("labels parquet per shard")
    filters: list[Path] = flag("filter parquet per shard")
    label_stats: list[Path] = flag("label_3dmm stats JSON per shard")
    out_dir: Path = flag("manifest directory (images.parquet, heads.parquet)")
    card: Path = flag("dataset card JSON to write")
    quality: Path = flag("gathered label quality JSON to write")
    plots: Path = flag("directory of the card's CSV + PNG plots")
    agreement: list[Path] = flag(
        "per-image agreement parquet per shard (filter stage; head-mesh renders)", default_factory=list
    )


def build_manifest_stage(params: dict, job: BuildManifestJob) -> dict:
    """Gather the shards; returns the dataset card (a dict). ``job.agreement``: the filter's per-image
    agreement tables (head-mesh renders; empty tables otherwise), for the card's agreement section."""
    from ..io import atomic_dir, write_json
    from ..manifest.build import ShardInputs, build_manifest
    from ..tracking import log_run
    from ..render import render_paths

    if not (len(job.shards) == len(job.render_tables) == len(job.labels) == len(job.filters)):
        from ..errors import ConfigError

        raise ConfigError("build-manifest: give one render table, labels and filter file per shard, in shard order")
    start = time.perf_counter()
    inputs = [
        ShardInputs(s, Path(r), render_paths(Path(r))[2], Path(lab), Path(f))
        for s, r, lab, f in zip(job.shards, job.render_tables, job.labels, job.filters)
    ]
    counts, card = build_manifest(params, inputs, job.out_dir)
    add_agreement(card, job.agreement or [])
    doc = card.to_dict()
    seconds = round(time.perf_counter() - start, 3)  # log and MLflow only: artefacts hold no wall-clock figures
    doc["val_shards"] = params["manifest"]["val_shards"]
    empty = [split for split in ("train", "val") if split in doc["splits"] and not doc["splits"][split]["images"]]
    if "train" in empty or not doc["images"]:
        from ..errors import NoDataError

        for name in ("images.parquet", "heads.parquet"):
            (Path(job.out_dir) / name).unlink(missing_ok=True)
        which = (
            "no image"
            if not doc["images"]
            else f"no training image (shards {', '.join(job.shards[params['manifest']['val_shards'] :])})"
        )
        raise NoDataError(
            f"build_manifest: {which} to put in the manifest, so train cannot run. "
            + explain_no_images(doc, params, _truth_heads(job.render_tables, params))
        )
    if empty:
        log.warning(
            "the validation split is empty: %s", explain_no_images(doc, params, _truth_heads(job.render_tables, params))
        )
    quality = gather_label_quality(job.label_stats)
    write_json(job.card, doc)
    write_json(job.quality, quality)
    with atomic_dir(job.plots) as tmp:
        card.write_plots(tmp)
    metrics = {k: v for k, v in doc.items() if k != "histograms"} | {"seconds": seconds}
    metrics["label_quality"] = {
        n: {k: v for k, v in q.items() if not isinstance(v, dict)} for n, q in quality.items() if isinstance(q, dict)
    }
    log_run(
        "build_manifest",
        params,
        metrics=metrics,
        run_params={"manifest": params["manifest"]},
        artifacts=[job.card, job.quality, job.plots],
    )
    log.info(
        "manifest: %d images, %d heads (%s); filter yield %s; %.1f s",
        counts["images"],
        counts["heads"],
        {k: v["images"] for k, v in doc["splits"].items()},
        doc["filter"]["yield"],
        seconds,
    )
    return doc


def add_agreement(card, paths: list[Path]) -> None:
    """The per-image agreement of head-mesh renders with their scenes into the card (nothing when the
    tables are empty: the renders were not head-mesh renders)."""
    from ..schemas import read_table

    for path in paths:
        rows = read_table(path, "agreement").to_pylist()
        if rows:
            card.add_agreement(rows)


def _cli(job: BuildManifestJob) -> int:
    from ..config import load_params

    build_manifest_stage(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "build-manifest",
        BuildManifestJob,
        _cli,
        help="gather every shard into images.parquet + heads.parquet and a dataset card",
        description=__doc__,
    )
