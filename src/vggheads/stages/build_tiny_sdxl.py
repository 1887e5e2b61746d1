"""Stage ``build_tiny_sdxl``: the tiny random-weight SDXL (UNet, VAE, text encoders, the openpose
adapter and ControlNets, and the head-mesh PNCC/depth ControlNets) that ``render.backend:
tiny-sdxl`` runs offline on a CPU (docs/sdxl.md).

    vggheads build-tiny-sdxl --out data/models/tiny-sdxl [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _cli(args: argparse.Namespace) -> int:
    from ..render.tiny_sdxl import build_tiny_sdxl

    build_tiny_sdxl(args.out, seed=args.seed)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "build-tiny-sdxl",
        help="build the tiny random-weight SDXL model directory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, required=True, help="directory to write (replaced atomically)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.set_defaults(func=_cli)
