"""Stage ``draw_samples``: a few renders of a shard with their truth drawn (boxes, landmarks, mesh,
pose axes), for the report and for a person to look at (:mod:`vggheads.render.truth_overlays`).

    vggheads draw-samples --images data/render/00000 --heads data/render/00000.heads.parquet \
        --head-model data/headmodel/head_model.npz --limit 4 --out plots/samples
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _cli(args: argparse.Namespace) -> int:
    from ..render.truth_overlays import draw

    draw(args.images, args.out, args.heads, args.head_model, limit=args.limit)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "draw-samples",
        help="draw the truth over the first images of a render shard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--images", type=Path, required=True, help="the shard's image folder (data/render/<shard>)")
    p.add_argument("--heads", type=Path, required=True, help="the shard's render_heads table")
    p.add_argument("--head-model", type=Path, required=True, help="head model for the mesh and axes")
    p.add_argument("--limit", type=int, default=4, help="draw the first N images")
    p.add_argument("--out", type=Path, required=True, help="output folder; the overlays go to OUT/<shard>/")
    p.set_defaults(func=_cli)
