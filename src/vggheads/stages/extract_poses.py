"""Stage ``extract_poses``: COCO-17 skeletons per sample and OpenPose-18 condition images (paper 1.1).

Backends: ``procedural`` samples multi-person skeletons from the caption (person count from its
words where stated); ``ultralytics`` runs YOLO-pose on the real images of the sampled rows.
Both write one parquet per shard (one row per person) and ``<sample_id>.png`` condition images.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ExtractPosesJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    shard: str = flag("shard id, e.g. 00000")
    captions: Path = flag("captions parquet of the shard")
    out: Path = flag("poses parquet to write")
    conditions: Path = flag("directory of condition images to write")
    stats: Path = flag("stats JSON to write")
    images: str | None = flag("backend ultralytics: the shard's photos (overrides poses.ultralytics.images)", None)


def extract_poses(params: dict, job: ExtractPosesJob) -> dict:
    """Write the poses parquet, the condition images and the stats JSON of ``job.shard``.

    ``job.images`` (backend ultralytics) overrides ``poses.ultralytics.images``: the pipeline passes the
    shard's ``download_images`` output when that key is null."""
    from PIL import Image
    from tqdm import tqdm

    from ..captions.text import person_count
    from ..config import rng, shard_index
    from ..io import atomic_dir, write_json
    from ..poses.openpose import draw_openpose
    from ..schemas import from_rows, read_table, write_table
    from ..tracking import log_run

    cfg = params["poses"]
    captions = read_table(job.captions, "captions", columns=["sample_id", "caption", "url"]).to_pylist()
    k = shard_index(job.shard)
    counts: Counter = Counter()
    rows: list[dict] = []

    def emit(sample_id, keypoints, boxes, width, height, cond_dir):
        if len(keypoints) == 0:
            counts["no_person"] += 1
            return
        img = draw_openpose(
            list(keypoints),
            width,
            height,
            cfg["min_confidence"],
            max(1, round(cfg["stickwidth"] * max(width, height) / 512)),
        )
        Image.fromarray(img).save(cond_dir / f"{sample_id}.png", optimize=False)
        for p, (kp, box) in enumerate(zip(keypoints, boxes)):
            rows.append(
                {
                    "sample_id": sample_id,
                    "person": p,
                    "width": width,
                    "height": height,
                    "keypoints": kp,
                    "box": box,
                    "condition_image": f"{sample_id}.png",
                    "backend": cfg["backend"],
                }
            )
        counts["samples"] += 1
        counts["persons"] += len(keypoints)

    with atomic_dir(job.conditions) as cond_dir:
        if cfg["backend"] == "procedural":
            from ..poses.procedural import sample_scene

            for j, cap in enumerate(tqdm(captions, desc=f"poses {job.shard}", unit="sample")):
                g = rng(params, "extract_poses", k, j)
                n = person_count(cap["caption"], g, cfg["max_persons"])
                persons = sample_scene(n, cfg["width"], cfg["height"], g)
                emit(
                    cap["sample_id"],
                    [p.keypoints for p in persons],
                    [p.box for p in persons],
                    cfg["width"],
                    cfg["height"],
                    cond_dir,
                )
        else:
            from ..errors import ConfigError
            from ..poses.yolo import detect, find_images, load_model

            ucfg = cfg["ultralytics"]
            source = job.images or ucfg["images"]
            if not source or source == "downloaded":
                raise ConfigError(
                    "poses.backend is 'ultralytics' but no images are given: poses.ultralytics.images "
                    "is a folder or a glob of .tar shards holding the images of the sampled rows, or "
                    "'downloaded' (the pipeline passes the shard's download_images output as --images)"
                )
            model = load_model(ucfg["weights"])
            wanted = [(c["sample_id"], c["url"]) for c in captions]
            for sample_id, image in tqdm(
                find_images(str(source), wanted), total=len(wanted), desc=f"poses {job.shard}", unit="image"
            ):
                if image is None:
                    counts["missing_or_corrupt_image"] += 1
                    continue
                kpts, boxes, w, h = detect(model, image, ucfg["conf"], ucfg["imgsz"], ucfg["max_det"])
                emit(sample_id, kpts, boxes, w, h, cond_dir)
        write_table(from_rows("poses", rows), job.out, "poses")
    stats = {
        "shard": job.shard,
        "backend": cfg["backend"],
        "captions": len(captions),
        "samples": counts["samples"],
        "persons": counts["persons"],
        "dropped": {"no_person": counts["no_person"], "missing_or_corrupt_image": counts["missing_or_corrupt_image"]},
        "persons_per_sample": round(counts["persons"] / max(1, counts["samples"]), 3),
    }
    if not counts["samples"]:  # every later stage of the shard will be empty: say why here
        stats["why_empty"] = f"no sample kept of {len(captions)} captions" + (
            f": no_person {counts['no_person']} (YOLO-pose found nobody above "
            f"poses.ultralytics.conf {cfg['ultralytics']['conf']}), missing_or_corrupt_image "
            f"{counts['missing_or_corrupt_image']} (not in poses.ultralytics.images)"
            if cfg["backend"] == "ultralytics" and captions
            else f" (data/captions/{job.shard}.stats.json)"
            if not captions
            else ""
        )
        log.warning("shard %s: %s", job.shard, stats["why_empty"])
    write_json(job.stats, stats)
    log_run("extract_poses", params, shard=job.shard, metrics=stats, run_params={"poses": cfg})
    log.info("shard %s: %d persons in %d samples", job.shard, counts["persons"], counts["samples"])
    return stats


def _cli(job: ExtractPosesJob) -> int:
    from ..config import load_params

    extract_poses(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "extract-poses",
        ExtractPosesJob,
        _cli,
        aliases=["extract_poses"],
        help="pose skeletons and OpenPose conditions for one shard",
        description=__doc__,
    )
