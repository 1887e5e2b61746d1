"""Stage ``build_manifest``: every shard into ``images.parquet`` + ``heads.parquet`` (paper 1.8).

Images the filter kept with at least one labelled head; splits by shard (the first
``manifest.val_shards`` are validation, as the release's split_00000-00001). Also writes the
dataset card (``metrics/dataset_card.json``; CSV + PNG histograms under ``plots/dataset/``) and
gathers the per-shard label quality of ``label_3dmm`` into ``metrics/label_quality.json``; all
of it goes to MLflow too. Schemas, fixed-size list columns and the schema version are in
:mod:`vggheads.schemas`; docs/dataset.md shows how to read the files.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

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


def build_manifest_stage(params: dict, shards: list[str], render_tables: list[Path], labels: list[Path],
                         filters: list[Path], label_stats: list[Path], out_dir: Path, card_json: Path,
                         quality_json: Path, plots_dir: Path, agreement: list[Path] | None = None) -> dict:
    """Gather the shards; returns the dataset card (a dict). ``agreement``: the filter's per-image
    agreement tables (head-mesh renders; empty tables otherwise), for the card's agreement section."""
    from ..io import atomic_dir, write_json
    from ..manifest.build import ShardInputs, build_manifest
    from ..tracking import log_run
    from .train_head_detector import render_paths

    if not (len(shards) == len(render_tables) == len(labels) == len(filters)):
        from ..errors import ConfigError

        raise ConfigError("build-manifest: give one render table, labels and filter file per shard, in shard order")
    start = time.perf_counter()
    inputs = [ShardInputs(s, Path(r), render_paths(Path(r))[2], Path(lab), Path(f))
              for s, r, lab, f in zip(shards, render_tables, labels, filters)]
    counts, card = build_manifest(params, inputs, out_dir)
    add_agreement(card, agreement or [])
    doc = card.to_dict()
    seconds = round(time.perf_counter() - start, 3)  # log and MLflow only: artefacts hold no wall-clock figures
    doc["val_shards"] = params["manifest"]["val_shards"]
    quality = gather_label_quality(label_stats)
    write_json(card_json, doc)
    write_json(quality_json, quality)
    with atomic_dir(plots_dir) as tmp:
        card.write_plots(tmp)
    metrics = {k: v for k, v in doc.items() if k != "histograms"} | {"seconds": seconds}
    metrics["label_quality"] = {n: {k: v for k, v in q.items() if not isinstance(v, dict)}
                                for n, q in quality.items() if isinstance(q, dict)}
    log_run("build_manifest", params, metrics=metrics, run_params={"manifest": params["manifest"]},
            artifacts=[card_json, quality_json, plots_dir])
    log.info("manifest: %d images, %d heads (%s); filter yield %s; %.1f s", counts["images"], counts["heads"],
             {k: v["images"] for k, v in doc["splits"].items()}, doc["filter"]["yield"], seconds)
    return doc


def add_agreement(card, paths: list[Path]) -> None:
    """The per-image agreement of head-mesh renders with their scenes into the card (nothing when the
    tables are empty: the renders were not head-mesh renders)."""
    from ..schemas import read_table

    for path in paths:
        rows = read_table(path, "agreement").to_pylist()
        if rows:
            card.add_agreement(rows)


def _cli(args: argparse.Namespace) -> int:
    from ..config import load_params

    params = load_params(args.params)
    build_manifest_stage(params, args.shards, args.render_tables, args.labels, args.filters, args.label_stats,
                         args.out_dir, args.card, args.quality, args.plots, agreement=args.agreement)
    return 0


def register(sub) -> None:
    p = sub.add_parser("build-manifest", help="gather every shard into images.parquet + heads.parquet and a dataset card",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--shards", nargs="+", required=True, help="shard ids, in order")
    p.add_argument("--render-tables", type=Path, nargs="+", required=True, help="render parquet per shard")
    p.add_argument("--labels", type=Path, nargs="+", required=True, help="labels parquet per shard")
    p.add_argument("--filters", type=Path, nargs="+", required=True, help="filter parquet per shard")
    p.add_argument("--label-stats", type=Path, nargs="+", required=True, help="label_3dmm stats JSON per shard")
    p.add_argument("--out-dir", type=Path, required=True, help="manifest directory (images.parquet, heads.parquet)")
    p.add_argument("--card", type=Path, required=True, help="dataset card JSON to write")
    p.add_argument("--quality", type=Path, required=True, help="gathered label quality JSON to write")
    p.add_argument("--plots", type=Path, required=True, help="directory of the card's CSV + PNG plots")
    p.add_argument("--agreement", type=Path, nargs="*", default=[],
                   help="per-image agreement parquet per shard (filter stage; head-mesh renders)")
    p.set_defaults(func=_cli)
