"""Precision and recall of the people check and the name check on hand-labelled LAION rows.

The labels file (CSV, ``#`` comments) has one row per labelled metadata row: ``row`` (index in the
source parquet), ``url_sha1`` (first 12 hex digits of sha1 of its URL, checked), ``people``,
``named`` and ``nsfw`` (0/1); the captions themselves stay in the source file. ``measure`` returns
the confusion tables of each check and the pipeline's outcome (kept = about people, not NSFW text,
no name): the share of kept captions that name a person, and the share of captions about people
without a name (the ones the pipeline should keep) that it keeps.
"""

from __future__ import annotations

import csv
import hashlib
import time
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InputError


def read_labels(path: str | Path) -> dict[int, dict]:
    with open(path, newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    labels = {}
    for rec in csv.DictReader(lines):
        labels[int(rec["row"])] = {
            "url_sha1": rec["url_sha1"],
            "people": rec["people"] == "1",
            "named": rec["named"] == "1",
            "nsfw": rec["nsfw"] == "1",
        }
    return labels


def read_captions(source: str | Path, labels: dict[int, dict]) -> dict[int, str]:
    """The captions of the labelled rows, checked against the labels' URL hashes."""
    from .sources import read_source

    table = read_source(str(source)).table
    urls, caps = table.column("url").to_pylist(), table.column("caption").to_pylist()
    out = {}
    for row, lab in labels.items():
        if row >= len(urls):
            raise InputError(f"{source}: labelled row {row} does not exist ({len(urls)} rows)")
        if hashlib.sha1((urls[row] or "").encode()).hexdigest()[:12] != lab["url_sha1"]:
            raise InputError(f"{source}: row {row} is not the labelled row (URL hash differs): wrong source file?")
        cap = caps[row]
        out[row] = cap.decode("utf-8", "replace") if isinstance(cap, bytes) else (cap or "")
    return out


def confusion(pred: Sequence[bool], truth: Sequence[bool]) -> dict:
    tp = sum(p and t for p, t in zip(pred, truth))
    fp = sum(p and not t for p, t in zip(pred, truth))
    fn = sum(t and not p for p, t in zip(pred, truth))
    tn = sum(not p and not t for p, t in zip(pred, truth))
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def measure(
    captions: dict[int, str],
    labels: dict[int, dict],
    name_check: Callable[[Sequence[str]], list[bool]],
    rows: Sequence[int] | None = None,
) -> dict:
    from .text import is_about_people, is_nsfw_text

    rows = sorted(captions) if rows is None else [r for r in rows if r in captions]
    texts = [captions[r] for r in rows]
    start = time.perf_counter()
    named = name_check(texts)
    seconds = time.perf_counter() - start
    people = [is_about_people(t) and not is_nsfw_text(t) for t in texts]
    lab = [labels[r] for r in rows]
    truth_people = [lb["people"] and not lb["nsfw"] for lb in lab]
    truth_named = [lb["named"] for lb in lab]
    passing = [i for i, p in enumerate(people) if p]
    kept = [i for i in passing if not named[i]]
    should_keep = [i for i, lb in enumerate(lab) if lb["people"] and not lb["named"] and not lb["nsfw"]]
    kept_set = set(kept)
    return {
        "rows": len(rows),
        "people_check": confusion(people, truth_people),
        "name_check_all_rows": confusion(named, truth_named),
        "name_check_people_rows": confusion([named[i] for i in passing], [truth_named[i] for i in passing]),
        "kept": len(kept),
        "kept_named": len([i for i in kept if truth_named[i]]),
        "kept_named_rows": [rows[i] for i in kept if truth_named[i]],
        "kept_not_people": len([i for i in kept if not truth_people[i]]),
        "should_keep": len(should_keep),
        "should_keep_kept": len([i for i in should_keep if i in kept_set]),
        "should_keep_missed_rows": [rows[i] for i in should_keep if i not in kept_set],
        "name_check_seconds": round(seconds, 3),
    }


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def markdown(results: dict[str, dict]) -> str:
    """Tables of ``{setting: measure(...)}``."""
    out = [
        "| setting | rows | kept | named among kept | people captions kept | name check P / R (people rows) | "
        "name check P / R (all rows) | people check P / R | name check s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in results.items():
        nk = f"{m['kept_named']} ({100 * m['kept_named'] / max(1, m['kept']):.1f} %)"
        pk = f"{m['should_keep_kept']}/{m['should_keep']} ({100 * m['should_keep_kept'] / max(1, m['should_keep']):.0f} %)"
        c1, c2, c3 = m["name_check_people_rows"], m["name_check_all_rows"], m["people_check"]
        out.append(
            f"| {name} | {m['rows']} | {m['kept']} | {nk} | {pk} | {_fmt(c1['precision'])} / {_fmt(c1['recall'])} "
            f"| {_fmt(c2['precision'])} / {_fmt(c2['recall'])} | {_fmt(c3['precision'])} / {_fmt(c3['recall'])} "
            f"| {m['name_check_seconds']} |"
        )
    return "\n".join(out)


def confusion_markdown(title: str, c: dict, positive: str) -> str:
    return "\n".join(
        [
            f"{title}",
            "",
            f"| | labelled {positive} | labelled not |",
            "|---|---|---|",
            f"| check says {positive} | {c['tp']} | {c['fp']} |",
            f"| check says not | {c['fn']} | {c['tn']} |",
        ]
    )
