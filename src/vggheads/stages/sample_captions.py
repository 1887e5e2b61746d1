"""Stage ``sample_captions``: LAION metadata rows -> prompts for one shard (paper 1.1-1.2).

Rules, in order, each counted in the shard's stats JSON: bad caption (null, empty, non-text; a
binary TEXT column is decoded as UTF-8 and its undecodable rows counted as ``not_utf8``), aspect
ratio > ``max_aspect_ratio`` (where WIDTH/HEIGHT are known), NSFW column in ``drop_nsfw``, punsafe /
pwatermark / similarity thresholds (when set and the column exists), not about people, near-duplicate
of an earlier caption (over ALL shards: first occurrence wins), names a person (``captions.names``:
spaCy's English NER by default, GLiNER as in the paper, or the built-in rules). Rows are dealt to
shards round-robin by their global index; then the prompt rewrite (diversity p=0.8, ", ultra
highres" p=0.5) and the fixed negative prompt. Seeded per sample.

With ``captions.source: blip2`` the kept rows are the ones whose photos ``download_images`` fetches
and ``caption_images`` re-captions. Sources with no rows at all, and a shard that keeps nothing,
stop the run with the counts: the stages after them would run on nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)

RULES = [
    "bad_caption",
    "aspect_ratio",
    "nsfw",
    "punsafe",
    "pwatermark",
    "similarity",
    "not_people",
    "near_duplicate",
    "named_person",
]
# Why a caption is bad (the stats' bad_caption_reasons).
BAD_CAPTION = ["null", "empty", "not_text", "not_utf8"]


def _number(value):
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def bad_caption(caption) -> str | None:
    """Why ``caption`` is not a usable caption (one of BAD_CAPTION), or None."""
    if caption is None:
        return "null"
    if isinstance(caption, (bytes, bytearray)):
        try:
            caption = bytes(caption).decode("utf-8")
        except UnicodeDecodeError:
            return "not_utf8"
    if not isinstance(caption, str):
        return "not_text"
    return None if caption.strip() else "empty"


def _cheap_rule(row: dict, cfg: dict) -> str | None:
    """The first row-level rule that drops ``row`` (None when it passes)."""
    from ..captions.text import is_about_people, is_nsfw_text

    caption = row.get("caption")
    if bad_caption(caption) is not None:
        return "bad_caption"
    if isinstance(caption, (bytes, bytearray)):
        caption = row["caption"] = bytes(caption).decode("utf-8")
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


@dataclass(frozen=True, kw_only=True)
class SampleCaptionsJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    shard: str = flag("shard id, e.g. 00000")
    out: Path = flag("captions parquet to write")
    stats: Path = flag("stats JSON to write")


def sample_captions(params: dict, job: SampleCaptionsJob) -> dict:
    """Write the captions parquet and stats JSON of ``job.shard``; return the stats."""
    from tqdm import tqdm

    from ..captions.names import build_name_check
    from ..captions.sources import read_source, resolve
    from ..captions.text import NearDuplicates, rewrite_prompt
    from ..config import rng, sample_seed, shard_index
    from ..errors import InputError
    from ..io import write_json
    from ..schemas import from_rows, write_table
    from ..tracking import log_run

    cfg = params["captions"]
    n_shards = params["dataset"]["shards"]
    k = shard_index(job.shard)
    if k >= n_shards:
        from ..errors import ConfigError

        raise ConfigError(f"shard {job.shard} does not exist: dataset.shards is {n_shards}")
    dedup = NearDuplicates(cfg["dedup_threshold"])
    drops: Counter = Counter()
    bad_reasons: Counter = Counter()
    candidates: list[dict] = []
    files = resolve(cfg["sources"])
    global_row = 0
    rows_in_shard = 0
    for path in files:
        src = read_source(path)
        columns = src.table.to_pydict()
        n = src.table.num_rows
        if src.binary_caption:
            log.warning(
                "%s: the caption column is binary, not text: decoded as UTF-8 (rows that are not UTF-8 "
                "are dropped as bad_caption, reason not_utf8)",
                path,
            )
        if n == 0:
            log.warning("%s: holds no rows", path)
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
            if rule is not None:
                drops[rule] += 1
                if rule == "bad_caption":
                    bad_reasons[bad_caption(row["caption"])] += 1
                continue
            candidates.append(
                {
                    "source_file": path,
                    "source_row": i,
                    "url": row["url"] or "",
                    "caption": " ".join(row["caption"].split()),
                }
            )
    if global_row == 0:
        raise InputError(
            f"captions.sources: {', '.join(files)} hold no rows at all; every stage after "
            "sample_captions would run on nothing"
        )
    if cfg["drop_named_persons"] and candidates:
        named = build_name_check(cfg["names"])([c["caption"] for c in candidates])
        drops["named_person"] += sum(named)
        candidates = [c for c, n in zip(candidates, named) if not n]
    cap = params["dataset"]["samples_per_shard"]
    kept = candidates if cap is None else candidates[:cap]
    rows = []
    for j, cand in enumerate(kept):
        prompt_rng = rng(params, "prompt", k, j)
        rows.append(
            {
                **cand,
                "sample_id": f"{job.shard}_{j:06d}",
                "shard": job.shard,
                "prompt": rewrite_prompt(cand["caption"], prompt_rng, cfg["diversity_p"], cfg["highres_p"]),
                "negative_prompt": cfg["negative_prompt"],
                "seed": sample_seed(params, k, j),
            }
        )
    write_table(from_rows("captions", rows), job.out, "captions")
    stats = {
        "shard": job.shard,
        "source_files": len(files),
        "rows_total": global_row,
        "rows_in_shard": rows_in_shard,
        "dropped": {r: drops.get(r, 0) for r in RULES},
        "bad_caption_reasons": {r: bad_reasons.get(r, 0) for r in BAD_CAPTION},
        "passed": len(candidates),
        "beyond_samples_per_shard": len(candidates) - len(kept),
        "kept": len(kept),
        "name_check": cfg["names"]["backend"] if cfg["drop_named_persons"] else "off",
    }
    write_json(job.stats, stats)
    log_run("sample_captions", params, shard=job.shard, metrics=stats, run_params={"captions": cfg})
    log.info(
        "shard %s: kept %d of %d rows (%s)",
        job.shard,
        len(kept),
        rows_in_shard,
        ", ".join(f"{r} {c}" for r, c in drops.items()),
    )
    if not kept:
        reasons = ", ".join(f"{r} {c}" for r, c in drops.items() if c) or "none"
        if bad_reasons:
            reasons += f" (bad_caption: {', '.join(f'{r} {c}' for r, c in bad_reasons.items())})"
        raise InputError(
            f"shard {job.shard}: none of its {rows_in_shard} rows kept a caption (dropped: {reasons}; "
            f"stats in {job.stats}). The stages after sample_captions would run on nothing: check "
            "captions.sources and the caption rules, or lower dataset.shards."
        )
    return stats


def _cli(job: SampleCaptionsJob) -> int:
    from ..config import load_params

    sample_captions(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "sample-captions",
        SampleCaptionsJob,
        _cli,
        aliases=["sample_captions"],
        help="filter LAION metadata into prompts for one shard",
        description=__doc__,
    )
