"""Stage ``build_head_model``: the project's procedural head model in FLAME's format and layout
(paper section 2; docs/headmodel.md). Skipped when ``headmodel.flame`` names a FLAME file.

    vggheads build-head-model --params params.yaml --out data/headmodel/head_model.npz [--seed N]
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class BuildHeadModelJob:
    out: Path = flag("output .npz")
    seed: int | None = flag("seed of the random components (default: headmodel.seed of --params, else 0)", None)
    params: Path | None = flag("params file to read headmodel.seed from", None)


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


def build_head_model_stage(job: BuildHeadModelJob) -> dict:
    """The stage: :func:`build` with ``job.seed``, else ``headmodel.seed`` of ``job.params``, else 0."""
    seed = job.seed
    if seed is None:
        from ..config import load_params

        seed = load_params(job.params)["headmodel"]["seed"] if job.params else 0
    return build(job.out, seed)


def _cli(job: BuildHeadModelJob) -> int:
    build_head_model_stage(job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "build-head-model",
        BuildHeadModelJob,
        _cli,
        help="build the procedural head model (FLAME format, .npz)",
        description=__doc__,
    )
