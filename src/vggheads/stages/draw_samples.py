"""Stage ``draw_samples``: a few renders of a shard with their truth drawn (boxes, landmarks, mesh,
pose axes), for the report and for a person to look at (:mod:`vggheads.render.truth_overlays`).

    vggheads draw-samples --images data/render/00000 --heads data/render/00000.heads.parquet \
        --head-model data/headmodel/head_model.npz --limit 4 --out plots/samples
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag


@dataclass(frozen=True, kw_only=True)
class DrawSamplesJob:
    images: Path = flag("the shard's image folder (data/render/<shard>)")
    heads: Path = flag("the shard's render_heads table")
    head_model: Path = flag("head model for the mesh and axes")
    limit: int = flag("draw the first N images", 4)
    out: Path = flag("output folder; the overlays go to OUT/<shard>/")


def _cli(job: DrawSamplesJob) -> int:
    from ..render.truth_overlays import draw

    draw(job.images, job.out, job.heads, job.head_model, limit=job.limit)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "draw-samples",
        DrawSamplesJob,
        _cli,
        help="draw the truth over the first images of a render shard",
        description=__doc__,
    )
