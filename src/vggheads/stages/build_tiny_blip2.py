"""Stage ``build_tiny_blip2``: a random-weight BLIP-2 of the paper's classes (ViT + Q-Former + OPT),
tiny, so that ``captions.source: blip2`` with ``captions.blip2.model: tiny`` runs the captioning
code offline in seconds (docs/captions.md).

    vggheads build-tiny-blip2 --out data/models/tiny-blip2 [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cli(args: argparse.Namespace) -> int:
    from ..captions.blip2 import build_tiny

    print(json.dumps(build_tiny(args.out, seed=args.seed)))
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "build-tiny-blip2",
        help="write the tiny random-weight BLIP-2",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, required=True, help="directory to write (replaced atomically)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.set_defaults(func=_cli)
