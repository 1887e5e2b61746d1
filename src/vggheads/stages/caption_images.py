"""Stage ``caption_images``: BLIP-2 captions of a shard's downloaded photos, then the name check (paper 1.1-1.2).

Runs when ``captions.source`` is ``blip2``. Each row of ``sample_captions`` whose photo was
downloaded (``download_images``) is captioned by BLIP-2 (``captions.blip2``: the paper's
``Salesforce/blip2-opt-2.7b``, 50 new tokens, batched, fp16 on a GPU); the caption replaces LAION's
alt-text and goes through the name check (``captions.names``; the paper: GLiNER) and, when
``captions.blip2.require_people`` is set, the people check. The prompt rewrite and seeds are those of
the row (same ``sample_id``). Rows without a photo, empty captions and dropped captions are counted.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)

DROPS = ["no_image", "undecodable_image", "empty_caption", "not_people", "named_person"]


def caption_images(
    params: dict, shard: str, rows_path: Path, images_path: Path, out: Path, stats_path: Path, model: str | None = None
) -> dict:
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
    k = shard_index(shard)
    rows = read_table(rows_path, "captions").to_pylist()
    wanted = {r["sample_id"] for r in rows}
    photos: dict[str, bytes] = {}
    for meta, data in iter_shard(images_path):
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
            model or bcfg["model"],
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
    with tqdm(total=len(todo), desc=f"blip2 {shard}", unit="image") as bar:
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
    write_table(from_rows("captions", out_rows), out, "captions")
    stats = {
        "shard": shard,
        "rows": len(rows),
        "captioned": len(captioned),
        "dropped": {d: drops.get(d, 0) for d in DROPS},
        "kept": len(out_rows),
        "model": str(model or bcfg["model"]),
    }
    write_json(stats_path, stats)
    log_run(
        "caption_images",
        params,
        shard=shard,
        metrics={k_: v for k_, v in stats.items() if k_ != "model"},
        run_params={"captions": cfg},
    )
    log.info(
        "shard %s: %d of %d rows captioned and kept (%s)",
        shard,
        len(out_rows),
        len(rows),
        ", ".join(f"{d} {c}" for d, c in drops.items()) or "nothing dropped",
    )
    if rows and not out_rows:
        raise InputError(
            f"shard {shard}: no caption kept of its {len(rows)} rows (dropped: "
            f"{', '.join(f'{d} {c}' for d, c in drops.items())}; stats in {stats_path}). The stages "
            "after it would run on nothing."
        )
    return stats


def _cli(args: argparse.Namespace) -> int:
    from ..config import load_params

    caption_images(load_params(args.params), args.shard, args.rows, args.images, args.out, args.stats, args.model)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "caption-images",
        aliases=["caption_images"],
        help="BLIP-2 captions of one shard's photos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--shard", required=True)
    p.add_argument("--rows", type=Path, required=True, help="the shard's rows (sample_captions output)")
    p.add_argument("--images", type=Path, required=True, help="the shard's webdataset .tar (download_images)")
    p.add_argument("--out", type=Path, required=True, help="captions parquet to write")
    p.add_argument("--stats", type=Path, required=True, help="stats JSON to write")
    p.add_argument("--model", default=None, help="BLIP-2 directory or cached id (default: captions.blip2.model)")
    p.set_defaults(func=_cli)
