"""Gather every shard into ``images.parquet`` and ``heads.parquet``.

An image enters the manifest when the filter kept it and at least one of its heads got a label
(an image whose heads all failed labelling is counted as ``kept_without_labelled_heads``). Splits
follow the paper: whole shards, the first ``manifest.val_shards`` are validation (the release's
``split_00000``-``split_00001`` of 100), the rest train. Shards are streamed one at a time into
row groups, so memory does not grow with the dataset.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from .card import DatasetCard

log = logging.getLogger(__name__)


@dataclass
class ShardInputs:
    shard: str
    render_table: Path  # schema render
    images_dir: Path
    labels: Path  # schema labels
    filter: Path  # schema filter


def split_of(shard_index: int, val_shards: int) -> str:
    return "val" if shard_index < val_shards else "train"


def shard_tables(inputs: ShardInputs, split: str, manifest_dir: Path) -> tuple[pa.Table, pa.Table, dict]:
    """(images rows, heads rows, per-shard counts) of one shard."""
    from ..schemas import read_table

    render = read_table(inputs.render_table, "render")
    labels = read_table(inputs.labels, "labels")
    filt = read_table(inputs.filter, "filter", columns=["sample_id", "keep", "reason"])
    kept = set(pc.filter(filt["sample_id"], filt["keep"]).to_pylist())
    reasons: dict[str, int] = {}
    for keep, reason in zip(filt["keep"].to_pylist(), filt["reason"].to_pylist()):
        if not keep:
            reasons[reason or "unknown"] = reasons.get(reason or "unknown", 0) + 1
    unfiltered = set(render["sample_id"].to_pylist()) - set(filt["sample_id"].to_pylist())
    if unfiltered:
        reasons["not_in_filter_table"] = len(unfiltered)
    labels = labels.filter(pc.is_in(labels["sample_id"], pa.array(sorted(kept), pa.string())))
    labels = labels.sort_by([("sample_id", "ascending"), ("head", "ascending")])
    counts = (
        dict(zip(*np.unique(np.asarray(labels["sample_id"].to_pylist(), dtype=object), return_counts=True)))
        if labels.num_rows
        else {}
    )
    img_rows = []
    kept_without_labels = 0
    for row in render.to_pylist():
        sid = row["sample_id"]
        if sid not in kept:
            continue
        n = int(counts.get(sid, 0))
        if n == 0:
            kept_without_labels += 1
            continue
        path = os.path.relpath(Path(inputs.images_dir) / row["image"], manifest_dir)
        img_rows.append(
            {
                "image_id": sid,
                "shard": inputs.shard,
                "split": split,
                "path": path,
                "width": row["width"],
                "height": row["height"],
                "n_heads": n,
                "backend": row["backend"],
                "prompt": row["prompt"],
                "seed": row["seed"],
            }
        )
    from ..schemas import from_rows

    images = from_rows("images", img_rows)
    heads = labels.rename_columns({"sample_id": "image_id"} | {c: c for c in labels.column_names if c != "sample_id"})
    heads = heads.append_column("split", pa.array([split] * heads.num_rows, pa.string()))
    info = {"rendered": render.num_rows, "reasons": reasons, "kept_without_labels": kept_without_labels}
    return images, heads, info


def build_manifest(params: dict, shards: list[ShardInputs], out_dir: Path) -> tuple[dict, "DatasetCard"]:
    """Write ``out_dir/images.parquet`` and ``out_dir/heads.parquet``; returns (counts, card)."""
    from tqdm import tqdm

    from ..config import shard_index
    from .card import DatasetCard
    from .io import TableWriter

    cfg = params["manifest"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = DatasetCard(cfg["angle_bin_deg"])
    rgs = cfg["row_group_size"]
    with (
        TableWriter(out_dir / "images.parquet", "images", rgs) as wi,
        TableWriter(out_dir / "heads.parquet", "heads", rgs) as wh,
    ):
        for inputs in tqdm(shards, desc="manifest", unit="shard"):
            split = split_of(shard_index(inputs.shard), cfg["val_shards"])
            images, heads, info = shard_tables(inputs, split, out_dir)
            wi.write(images)
            wh.write(heads)
            card.add_shard(
                inputs.shard,
                split,
                info["rendered"],
                info["reasons"],
                info["kept_without_labels"],
                images["n_heads"].to_numpy(),
                heads["yaw"].to_numpy(),
                heads["pitch"].to_numpy(),
                heads["roll"].to_numpy(),
                np.asarray(heads["box"].combine_chunks().flatten().to_numpy()).reshape(-1, 4)
                if heads.num_rows
                else np.zeros((0, 4)),
                heads["labeller"].to_pylist(),
            )
    return {"images": wi.rows, "heads": wh.rows}, card
