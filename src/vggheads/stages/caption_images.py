"""Stage ``caption_images``: BLIP-2 captions of a shard's downloaded photos, then the name check (paper 1.1-1.2).

Runs when ``captions.source`` is ``blip2``. Each row of ``sample_captions`` whose photo was
downloaded (``download_images``) is captioned by BLIP-2 (``captions.blip2``: the paper's
``Salesforce/blip2-opt-2.7b``, 50 new tokens, batched, fp16 on a GPU); the caption replaces LAION's
alt-text and goes through the name check (``captions.names``; the paper: GLiNER) and, when
``captions.blip2.require_people`` is set, the people check. The prompt rewrite and seeds are those of
the row (same ``sample_id``). Rows without a photo, empty captions and dropped captions are counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)

DROPS = ["no_image", "undecodable_image", "empty_caption", "not_people", "named_person"]


@dataclass(frozen=True, kw_only=True)
class CaptionImagesJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    shard: str = flag("shard id, e.g. 00000")
    rows: Path = flag("the shard's rows (sample_captions output)")
    images: Path = flag("the shard's webdataset .tar (download_images)")
    out: Path = flag("captions parquet to write")
    stats: Path = flag("stats JSON to write")
    model: str | None = flag("BLIP-2 directory or cached id (default: captions.blip2.model)", None)


def caption_images(params: dict, job: CaptionImagesJob) -> dict:
    from tqdm import tqdm

    from ..captions.blip2 import Captioner
    from ..captions.download import decode, iter_shard
    from ..captions.names import build_name_check
    from ..captions.text import is_about_people, is_nsfw_text, rewrite_prompt
    from ..config import rng, shard_index
    from ..errors import InputError
    from ..io import write_json
    from ..schemas import from_rows, read_table, write_table
    from ..tracking import log_run

    cfg = params["captions"]
    bcfg = cfg["blip2"]
    k = shard_index(job.shard)
    rows = read_table(job.rows, "captions").to_pylist()
    wanted = {r["sample_id"] for r in rows}
    photos: dict[str, bytes] = {}
    for meta, data in iter_shard(job.images):
        sid = meta.get("sample_id")
        if sid in wanted and sid not in photos:
            photos[sid] = data
    drops: Counter = Counter()
    todo: list[tuple[dict, object]] = []
    for row in rows:
        if row["sample_id"] not in photos:
            drops["no_image"] += 1
            continue
        image = decode(photos[row["sample_id"]])
        if image is None:
            drops["undecodable_image"] += 1
            continue
        todo.append((row, image))
    captioner = (
        Captioner(
            job.model or bcfg["model"],
            device=bcfg["device"],
            dtype=bcfg["dtype"],
            max_new_tokens=bcfg["max_new_tokens"],
            prompt=bcfg["prompt"],
        )
        if todo
        else None
    )
    captioned: list[tuple[dict, str]] = []
    batch = bcfg["batch_size"]
    with tqdm(total=len(todo), desc=f"blip2 {job.shard}", unit="image") as bar:
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            texts = captioner([im for _, im in chunk])
            captioned.extend((row, text) for (row, _), text in zip(chunk, texts))
            bar.update(len(chunk))
    kept: list[tuple[dict, str]] = []
    for row, text in captioned:
        if not text.strip():
            drops["empty_caption"] += 1
        elif bcfg["require_people"] and (not is_about_people(text) or is_nsfw_text(text)):
            drops["not_people"] += 1
        else:
            kept.append((row, text))
    if cfg["drop_named_persons"] and kept:
        named = build_name_check(cfg["names"])([text for _, text in kept])
        drops["named_person"] += sum(named)
        kept = [pair for pair, n in zip(kept, named) if not n]
    out_rows = []
    for row, text in kept:
        j = int(row["sample_id"].rsplit("_", 1)[1])
        prompt = rewrite_prompt(text, rng(params, "prompt", k, j), cfg["diversity_p"], cfg["highres_p"])
        out_rows.append({**row, "caption": text, "prompt": prompt})
    write_table(from_rows("captions", out_rows), job.out, "captions")
    stats = {
        "shard": job.shard,
        "rows": len(rows),
        "captioned": len(captioned),
        "dropped": {d: drops.get(d, 0) for d in DROPS},
        "kept": len(out_rows),
        "model": str(job.model or bcfg["model"]),
    }
    write_json(job.stats, stats)
    log_run(
        "caption_images",
        params,
        shard=job.shard,
        metrics={k_: v for k_, v in stats.items() if k_ != "model"},
        run_params={"captions": cfg},
    )
    log.info(
        "shard %s: %d of %d rows captioned and kept (%s)",
        job.shard,
        len(out_rows),
        len(rows),
        ", ".join(f"{d} {c}" for d, c in drops.items()) or "nothing dropped",
    )
    if rows and not out_rows:
        raise InputError(
            f"shard {job.shard}: no caption kept of its {len(rows)} rows (dropped: "
            f"{', '.join(f'{d} {c}' for d, c in drops.items())}; stats in {job.stats}). The stages "
            "after it would run on nothing."
        )
    return stats


def _cli(job: CaptionImagesJob) -> int:
    from ..config import load_params

    caption_images(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "caption-images",
        CaptionImagesJob,
        _cli,
        aliases=["caption_images"],
        help="BLIP-2 captions of one shard's photos",
        description=__doc__,
    )
