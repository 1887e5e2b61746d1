"""Stage ``sample_captions``: LAION metadata rows -> prompts for one shard (paper 1.1-1.2).

Rules, in order, each counted in the shard's stats JSON: bad caption (null, empty, non-text),
aspect ratio > ``max_aspect_ratio`` (where WIDTH/HEIGHT are known), NSFW column in ``drop_nsfw``,
punsafe / pwatermark / similarity thresholds (when set and the column exists), not about people,
near-duplicate of an earlier caption (over ALL shards: first occurrence wins), names a person. Rows
are dealt to shards round-robin by their global index; then the prompt rewrite (diversity p=0.8,
", ultra highres" p=0.5) and the fixed negative prompt. Seeded per sample.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)

RULES = ["bad_caption", "aspect_ratio", "nsfw", "punsafe", "pwatermark", "similarity", "not_people",
         "near_duplicate", "named_person"]


class _NerNames:
    """Named-person check with a local Hugging Face token-classification model."""

    def __init__(self, path: str):
        from ..errors import MissingWeightsError

        if not Path(path).is_dir():
            raise MissingWeightsError("captions.ner_model", path,
                                      "Point it at a local directory saved with save_pretrained (e.g. a "
                                      "downloaded dslim/bert-base-NER), or set it to null for the built-in rules.")
        from transformers import pipeline

        self.pipe = pipeline("token-classification", model=path, tokenizer=path, aggregation_strategy="simple",
                             device="cpu")

    def __call__(self, caption: str) -> bool:
        return any(ent.get("entity_group", ent.get("entity", "")).endswith("PER") for ent in self.pipe(caption))


def _number(value):
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _cheap_rule(row: dict, cfg: dict) -> str | None:
    """The first row-level rule that drops ``row`` (None when it passes)."""
    from ..captions.text import is_about_people, is_nsfw_text

    caption = row.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        return "bad_caption"
    w, h = _number(row.get("WIDTH")), _number(row.get("HEIGHT"))
    if w and h and w > 0 and h > 0 and max(w / h, h / w) > cfg["max_aspect_ratio"]:
        return "aspect_ratio"
    if (row.get("NSFW") is not None and str(row["NSFW"]) in cfg["drop_nsfw"]) or is_nsfw_text(caption):
        return "nsfw"
    punsafe = _number(row.get("punsafe"))
    if cfg["max_punsafe"] is not None and punsafe is not None and punsafe > cfg["max_punsafe"]:
        return "punsafe"
    pwm = _number(row.get("pwatermark"))
    if cfg["max_pwatermark"] is not None and pwm is not None and pwm > cfg["max_pwatermark"]:
        return "pwatermark"
    sim = _number(row.get("similarity"))
    if cfg["min_similarity"] is not None and sim is not None and sim < cfg["min_similarity"]:
        return "similarity"
    if cfg["require_people"] and not is_about_people(caption):
        return "not_people"
    return None


def sample_captions(params: dict, shard: str, out: Path, stats_path: Path) -> dict:
    """Write the captions parquet and stats JSON of ``shard``; return the stats."""
    from tqdm import tqdm

    from ..captions.sources import read_source, resolve
    from ..captions.text import NearDuplicates, names_person, rewrite_prompt
    from ..config import rng, sample_seed, shard_index
    from ..io import write_json
    from ..schemas import from_rows, write_table
    from ..tracking import log_run

    cfg = params["captions"]
    n_shards = params["dataset"]["shards"]
    k = shard_index(shard)
    if k >= n_shards:
        from ..errors import ConfigError

        raise ConfigError(f"shard {shard} does not exist: dataset.shards is {n_shards}")
    names = _NerNames(cfg["ner_model"]) if cfg["ner_model"] else names_person
    dedup = NearDuplicates(cfg["dedup_threshold"])
    drops: Counter = Counter()
    candidates: list[dict] = []
    files = resolve(cfg["sources"])
    global_row = 0
    rows_in_shard = 0
    for path in files:
        src = read_source(path)
        columns = src.table.to_pydict()
        n = src.table.num_rows
        for i in tqdm(range(n), desc=f"captions {Path(path).name}", unit="row", mininterval=1.0):
            mine = global_row % n_shards == k
            global_row += 1
            rows_in_shard += mine
            row = {c: columns[c][i] for c in columns}
            rule = _cheap_rule(row, cfg)
            if rule is None and dedup.seen(row["caption"]):
                rule = "near_duplicate"
            if not mine:
                continue
            if rule is None and cfg["drop_named_persons"] and names(row["caption"]):
                rule = "named_person"
            if rule is not None:
                drops[rule] += 1
                continue
            candidates.append({"source_file": path, "source_row": i, "url": row["url"] or "",
                               "caption": " ".join(row["caption"].split())})
    cap = params["dataset"]["samples_per_shard"]
    kept = candidates if cap is None else candidates[:cap]
    rows = []
    for j, cand in enumerate(kept):
        prompt_rng = rng(params, "prompt", k, j)
        rows.append({**cand, "sample_id": f"{shard}_{j:06d}", "shard": shard,
                     "prompt": rewrite_prompt(cand["caption"], prompt_rng, cfg["diversity_p"], cfg["highres_p"]),
                     "negative_prompt": cfg["negative_prompt"], "seed": sample_seed(params, k, j)})
    write_table(from_rows("captions", rows), out, "captions")
    stats = {"shard": shard, "source_files": len(files), "rows_total": global_row, "rows_in_shard": rows_in_shard,
             "dropped": {r: drops.get(r, 0) for r in RULES}, "passed": len(candidates),
             "beyond_samples_per_shard": len(candidates) - len(kept), "kept": len(kept)}
    write_json(stats_path, stats)
    log_run("sample_captions", params, shard=shard, metrics=stats, run_params={"captions": cfg})
    log.info("shard %s: kept %d of %d rows (%s)", shard, len(kept), rows_in_shard,
             ", ".join(f"{r} {c}" for r, c in drops.items()))
    return stats


def _cli(args: argparse.Namespace) -> int:
    from ..config import load_params

    sample_captions(load_params(args.params), args.shard, args.out, args.stats)
    return 0


def register(sub) -> None:
    p = sub.add_parser("sample-captions", aliases=["sample_captions"], help="filter LAION metadata into prompts for one shard",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (default: params.yaml)")
    p.add_argument("--shard", required=True, help="shard id, e.g. 00000")
    p.add_argument("--out", type=Path, required=True, help="captions parquet to write")
    p.add_argument("--stats", type=Path, required=True, help="stats JSON to write")
    p.set_defaults(func=_cli)
