"""Render backends for the ``render`` stage.

Each backend module defines::

    def render_shard(ctx: RenderContext) -> RenderResult

and is registered in :data:`BACKENDS`. The stage (``vggheads.stages.render``) reads the inputs,
gives the backend a context, and writes what it returns atomically.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa


def render_paths(render_table: Path) -> tuple[Path, Path, Path]:
    """(render table, render_heads table, images dir) of a shard from its render table path
    (the render stage writes ``{shard}.parquet``, ``{shard}.heads.parquet`` and ``{shard}/``)."""
    render_table = Path(render_table)
    stem = render_table.name[: -len(".parquet")]
    return render_table, render_table.with_name(f"{stem}.heads.parquet"), render_table.with_name(stem)


# backend name -> module implementing render_shard
BACKENDS = {
    "procedural": "vggheads.render.procedural",
    "sdxl": "vggheads.render.sdxl",
    "tiny-sdxl": "vggheads.render.sdxl",
}


@dataclass
class RenderContext:
    params: dict  # validated params (the whole file)
    shard: str  # shard id, e.g. "00000"
    captions: pa.Table  # schema "captions": one row per sample
    poses: pa.Table  # schema "poses": one row per person
    conditions_dir: Path  # OpenPose-18 condition images, <sample_id>.png
    images_dir: Path  # write <sample_id>.<ext> here (a temp dir renamed into place at the end)
    work_dir: Path  # persistent scratch for resuming a killed job (not a declared output)
    head_model: Path  # head-model file (ours .npz or FLAME .pkl)


@dataclass
class RenderResult:
    images: list[dict]  # rows of schema "render"; "image" relative to the images dir
    heads: list[dict] = field(default_factory=list)  # rows of schema "render_heads" (exact truth; procedural only)
    stats: dict = field(default_factory=dict)  # counts/timings for the stats JSON and MLflow


def get_backend(name: str):
    if name not in BACKENDS:
        raise KeyError(f"unknown render backend '{name}' (known: {', '.join(BACKENDS)})")
    return importlib.import_module(BACKENDS[name])
