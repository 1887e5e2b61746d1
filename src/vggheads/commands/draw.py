"""``vggheads draw``: draw the per-head truth (or any table of schema ``render_heads``) over images,
so a person can check it by eye.

    vggheads draw data/render/00000                     # every image of a shard -> overlays/00000/
    vggheads draw data/render/00000/00000_000003.png    # one image -> overlays/00000_000003.png
    vggheads draw data/render/00000 --what box,landmarks --scale 1 --limit 4

Boxes, the 68 landmarks (filled green = visible, hollow red = occluded), the mesh wireframe
(front-facing triangles, decoded from the 413 parameters with the head model) and the head's axes
(red = its left, green = up, blue = where the face looks). ``--poses`` adds the COCO skeleton
keypoints the heads were placed from (cyan = confident, red = not).

The heads table defaults to ``<shard dir>.heads.parquet`` beside the image directory, which is
where the ``render`` stage writes it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..render.truth_overlays import DEFAULT_HEAD_MODEL, WHAT, draw


def _cli(args: argparse.Namespace) -> int:
    from ..errors import InputError

    what = tuple(w.strip() for w in args.what.split(",") if w.strip())
    bad = [w for w in what if w not in WHAT]
    if bad:
        raise InputError(f"--what: unknown item(s) {bad} (choose from {', '.join(WHAT)})")
    for path in draw(args.input, args.out, args.heads, args.head_model, what, args.scale, args.limit, args.poses):
        print(path)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "draw",
        help="draw head truth (boxes, landmarks, mesh, pose axes) over images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", type=Path, help="an image, or a directory of images (a render shard)")
    p.add_argument(
        "--heads",
        type=Path,
        default=None,
        help="heads parquet (schema render_heads); default: <image dir>.heads.parquet",
    )
    p.add_argument("--poses", type=Path, default=None, help="poses parquet: also draw the skeleton keypoints")
    p.add_argument(
        "--head-model", type=Path, default=None, help=f"head model for the mesh and axes (default {DEFAULT_HEAD_MODEL})"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("overlays"),
        help="output directory (or a .png file for one image); default overlays/",
    )
    p.add_argument("--what", default=",".join(WHAT), help=f"comma-separated subset of {','.join(WHAT)}")
    p.add_argument("--scale", type=int, default=2, help="enlarge the image by this factor before drawing")
    p.add_argument("--limit", type=int, default=None, help="draw at most this many images")
    p.set_defaults(func=_cli)
