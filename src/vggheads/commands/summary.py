"""``vggheads summary``: what the last pipeline run produced, read from its stats and metrics files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.metrics import GEODESIC_KEY, NME68_ANCHOR_KEY, NME68_KEY, NME_KEY, POSE_MAE_KEY


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _sum_stats(pattern: str) -> dict:
    """Sum the numbers (and nested counters) of every per-shard stats JSON matching ``pattern``."""
    total: dict = {}
    for path in sorted(Path().glob(pattern)):
        for key, value in _load(path).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            elif isinstance(value, dict):
                sub = total.setdefault(key, {})
                for k, v in value.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        sub[k] = sub.get(k, 0) + v
    return total


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _pick(data: dict, keys: list[str]) -> str:
    parts = []
    for key in keys:
        value = data.get(key)
        if isinstance(value, dict):
            nonzero = {k: v for k, v in value.items() if v}
            parts.append(f"{key}: " + (", ".join(f"{k} {_fmt(v)}" for k, v in nonzero.items()) or "none"))
        elif value is not None:
            parts.append(f"{key} {_fmt(value)}")
    return "; ".join(parts)


# Every line prints a figure under its key, whose name carries its unit (vggheads.core.metrics):
# *_pct percent, *_deg degrees; ap50, recall, fr, failure_rate and matched are fractions.
# train: AP50; on matched heads the 68-landmark NME and the paper's NME over the head vertices and
# its failure rate fr (share of matched heads with a head-vertex NME > 5 %); the share of heads
# matched; the 68-landmark NME of the best anchor inside each head's box.
TRAIN_KEYS = ["ap50", NME68_KEY, NME_KEY, "fr", "matched", NME68_ANCHOR_KEY]
QUALITY_KEYS = ["detection_recall", NME_KEY, "failure_rate", GEODESIC_KEY]
EVAL_KEYS = ["ap50", NME_KEY, "failure_rate", POSE_MAE_KEY, "recall", "ap_easy", "ap_medium", "ap_hard"]


def summarise() -> str:
    lines = []

    def add(name: str, text: str) -> None:
        if text:
            lines.append(f"{name:<14} {text}")

    add("captions", _pick(_sum_stats("data/captions/*.stats.json"), ["rows_in_shard", "kept", "dropped"]))
    add("poses", _pick(_sum_stats("data/poses/*.stats.json"), ["samples", "persons", "dropped"]))
    add("render", _pick(_sum_stats("data/render/*.stats.json"), ["images", "heads"]))
    detector = _load(Path("metrics/detector.json"))
    if detector.get("heldout"):
        add("detector", "held-out images: " + _pick(detector["heldout"], ["recall", "precision", "ap50"]))
    add("detect_heads", _pick(_sum_stats("data/detections/*.stats.json"), ["images", "heads"]))
    quality = _load(Path("metrics/label_quality.json"))
    for labeller, q in quality.items():
        if isinstance(q, dict):
            add("label quality", f"{labeller}: " + _pick(q, QUALITY_KEYS))
    add("filter", _pick(_sum_stats("data/filter/*.stats.json"), ["images", "kept", "reasons"]))
    add("manifest", _pick(_load(Path("metrics/dataset_card.json")), ["images", "heads", "heads_per_image_mean"]))
    train = _load(Path("metrics/train.json"))
    if train:
        add("train", _pick(train, ["epochs", "train_images", "val_images", "init"]))
        for phase in ("untrained", "val"):
            if isinstance(train.get(phase), dict):
                add("", f"{phase}: " + _pick(train[phase], TRAIN_KEYS))
    for path in sorted(Path("metrics/evaluate").glob("*.json")):
        for system, m in _load(path).items():
            if isinstance(m, dict):
                add(
                    f"eval {path.stem}"[:14],
                    f"{system}: " + _pick(m, EVAL_KEYS),
                )
    for results in sorted(Path("reports").rglob("*.md")):
        add("results table", str(results))
    if not lines:
        return "nothing yet: run `make run` (or `snakemake --cores 2`)"
    return "\n".join(["vggheads run summary", "===================="] + lines)


def _cli(args: argparse.Namespace) -> int:
    print(summarise())
    return 0


def register(sub) -> None:
    p = sub.add_parser("summary", help="summarise what the pipeline produced (stats and metrics)", description=__doc__)
    p.set_defaults(func=_cli)
