"""Stage ``release_manifest`` (``dataset.source: release``): the imported splits gathered into the
manifests ``train`` and ``evaluate`` read, exactly as ``build_manifest`` writes them for generated data.

Writes ``images.parquet``, ``heads.parquet`` and ``head_boxes.parquet`` (streamed, split by
split), the dataset card (``metrics/dataset_card.json``, with the release's removals and drops
per reason) and its plots. An image id found in two splits stops the stage naming both.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)

TABLES = (("images.parquet", "images"), ("heads.parquet", "heads"), ("head_boxes.parquet", "head_boxes"))


@dataclass(frozen=True, kw_only=True)
class ReleaseManifestJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    splits: list[str] = flag("split ids, in order")
    split_dirs: list[Path] = flag("import_release output folder per split")
    out_dir: Path = flag("manifest directory")
    card: Path = flag("dataset card JSON to write")
    plots: Path = flag("directory of the card's CSV + PNG plots")


def release_manifest(params: dict, job: ReleaseManifestJob) -> dict:
    """Gather the per-split tables of ``import_release``; returns the dataset card (a dict)."""
    import numpy as np

    from ..errors import ConfigError, InputError
    from ..io import atomic_dir, write_json
    from ..manifest.card import DatasetCard
    from ..manifest.io import TableWriter, iter_batches
    from ..release import importer  # noqa: F401  (registers the head_boxes schema)
    from ..tracking import log_run

    if len(job.splits) != len(job.split_dirs):
        raise ConfigError("release-manifest: give one split folder per split id, in order")
    cfg = params["manifest"]
    card = DatasetCard(cfg["angle_bin_deg"])
    seen: dict[str, str] = {}
    release = {
        "root": params["dataset"]["release"]["root"],
        "splits": list(job.splits),
        "listed_ids": 0,
        "removed_in_files_txt": 0,
        "dropped": {},
        "dropped_heads": {},
    }
    out_dir = Path(job.out_dir)
    with contextlib.ExitStack() as stack:  # none of the three tables appears unless every split was read
        writers = [stack.enter_context(TableWriter(out_dir / f, name, cfg["row_group_size"])) for f, name in TABLES]
        for split, d in zip(job.splits, job.split_dirs):
            d = Path(d)
            try:
                stats = json.loads((d / "stats.json").read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise InputError(f"{d / 'stats.json'}: not a readable import_release stats file ({exc})") from None
            n_heads = []
            for batch in iter_batches(d / "images.parquet", "images"):
                for image_id in batch.column("image_id").to_pylist():
                    if image_id in seen:
                        raise InputError(
                            f"image id '{image_id}' is in split_{seen[image_id]} and split_{split}; "
                            "ids must be unique across the release"
                        )
                    seen[image_id] = split
                n_heads.append(batch.column("n_heads").to_numpy())
                writers[0].write(_table(batch))
            angles, boxes, labellers = {k: [] for k in ("yaw", "pitch", "roll")}, [], []
            for batch in iter_batches(d / "heads.parquet", "heads"):
                for k in angles:
                    angles[k].append(batch.column(k).to_numpy())
                boxes.append(np.asarray(batch.column("box").flatten().to_numpy()).reshape(-1, 4))
                labellers += batch.column("labeller").to_pylist()
                writers[1].write(_table(batch))
            for batch in iter_batches(d / "head_boxes.parquet", "head_boxes"):
                writers[2].write(_table(batch))
            cat = lambda xs, shape=(0,): np.concatenate(xs) if xs else np.zeros(shape)
            drops = stats.get("dropped", {})
            listed = stats["images"] + sum(drops.values())  # every id of the split: imported or a counted drop
            # the card's "filter" is the release's: files.txt removals and import drops, per reason
            card.add_shard(
                split,
                stats["split_name"],
                listed,
                drops,
                0,
                cat(n_heads),
                cat(angles["yaw"]),
                cat(angles["pitch"]),
                cat(angles["roll"]),
                cat(boxes, (0, 4)),
                labellers,
            )
            release["listed_ids"] += listed
            release["removed_in_files_txt"] += stats.get("removed_in_files_txt", 0)
            for key in ("dropped", "dropped_heads"):
                for k, v in stats.get(key, {}).items():
                    release[key][k] = release[key].get(k, 0) + v
    doc = card.to_dict()
    doc["val_shards"] = params["dataset"]["release"]["val_splits"]
    doc["source"] = "release"
    doc["release"] = release
    write_json(job.card, doc)
    with atomic_dir(job.plots) as tmp:
        card.write_plots(tmp)
    log_run(
        "release_manifest",
        params,
        metrics={k: v for k, v in doc.items() if k != "histograms"},
        run_params={"dataset": params["dataset"], "manifest": cfg},
        artifacts=[job.card, job.plots],
    )
    log.info(
        "manifest from the release: %d images, %d heads (%s); %d removed by files.txt; drops %s",
        doc["images"],
        doc["heads"],
        {k: v["images"] for k, v in doc["splits"].items()},
        release["removed_in_files_txt"],
        release["dropped"] or "none",
    )
    return doc


def _table(batch):
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def _cli(job: ReleaseManifestJob) -> int:
    from ..config import load_params

    release_manifest(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "release-manifest",
        ReleaseManifestJob,
        _cli,
        help="gather the imported release splits into images/heads.parquet and a dataset card",
        description=__doc__,
    )
