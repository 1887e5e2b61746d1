"""``vggheads summary``: what the last pipeline run produced, read from its stats and metrics files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _sum_stats(pattern: str) -> dict:
    total: dict = {}
    for path in sorted(Path().glob(pattern)):
        for key, value in json.loads(path.read_text()).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "shard":
                total[key] = total.get(key, 0) + value
            elif isinstance(value, dict):
                sub = total.setdefault(key, {})
                for k, v in value.items():
                    if isinstance(v, (int, float)):
                        sub[k] = sub.get(k, 0) + v
    return total


def summarise() -> str:
    lines = ["vggheads run summary", "===================="]
    sections = [("captions", "data/captions/*.stats.json", ["rows_in_shard", "kept", "dropped"]),
                ("poses", "data/poses/*.stats.json", ["samples", "persons", "dropped"]),
                ("render", "data/render/*.stats.json", ["images", "heads", "seconds"])]
    for name, pattern, keys in sections:
        stats = _sum_stats(pattern)
        if not stats:
            continue
        parts = []
        for key in keys:
            if key not in stats:
                continue
            value = stats[key]
            if isinstance(value, dict):
                nonzero = {k: v for k, v in value.items() if v}
                parts.append(f"{key}: " + (", ".join(f"{k} {v}" for k, v in nonzero.items()) or "none"))
            else:
                parts.append(f"{key} {round(value, 2)}")
        lines.append(f"{name:<10} " + "; ".join(parts))
    for path in sorted(Path("metrics").glob("*.json")):
        data = json.loads(path.read_text())
        flat = {k: v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        lines.append(f"{path.stem:<10} " + ", ".join(f"{k} {v:.4g}" for k, v in list(flat.items())[:8]))
    for results in sorted(Path("metrics").glob("*.md")):
        lines.append(f"results table: {results}")
    if len(lines) == 2:
        lines.append("nothing yet: run `make run` (or `snakemake --cores 2`)")
    return "\n".join(lines)


def _cli(args: argparse.Namespace) -> int:
    print(summarise())
    return 0


def register(sub) -> None:
    p = sub.add_parser("summary", help="summarise what the pipeline produced (stats and metrics)", description=__doc__)
    p.set_defaults(func=_cli)
