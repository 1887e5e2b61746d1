"""Stage ``build_head_model``: the project's procedural head model in FLAME's format and layout
(paper section 2; docs/headmodel.md). Skipped when ``headmodel.flame`` names a FLAME file.

    vggheads build-head-model --params params.yaml --out data/headmodel/head_model.npz [--seed N]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def build(out: Path, seed: int) -> dict:
    """Build the procedural model with ``seed`` and write it to ``out`` atomically; returns stats."""
    from ..headmodel import build_head_model, save_head_model

    start = time.perf_counter()
    model = build_head_model(seed)
    save_head_model(model, out)
    stats = {
        "vertices": model.n_vertices,
        "faces": len(model.faces),
        "seed": seed,
        "seconds": round(time.perf_counter() - start, 2),
    }
    log.info(
        "wrote %s: %d vertices, %d triangles (seed %d) in %.1f s",
        out,
        stats["vertices"],
        stats["faces"],
        seed,
        stats["seconds"],
    )
    return stats


def _cli(args: argparse.Namespace) -> int:
    seed = args.seed
    if seed is None:
        from ..config import load_params

        seed = load_params(args.params)["headmodel"]["seed"] if args.params else 0
    build(args.out, seed)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "build-head-model",
        help="build the procedural head model (FLAME format, .npz)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, required=True, help="output .npz")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the random components (default: headmodel.seed of --params, else 0)",
    )
    p.add_argument("--params", type=Path, default=None, help="params file to read headmodel.seed from")
    p.set_defaults(func=_cli)
