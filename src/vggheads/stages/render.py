"""Stage ``render``: images for one shard from its captions and pose conditions.

Backends: ``procedural`` (rasterised 3D heads on simple bodies, exact per-head truth),
``sdxl`` (diffusers SDXL + T2I-Adapter/ControlNet, real weights) and ``tiny-sdxl`` (the same
diffusers code path with tiny random weights, for CPUs and tests).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RenderJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    shard: str = flag("shard id, e.g. 00000")
    captions: Path = flag("captions parquet of the shard")
    poses: Path = flag("poses parquet of the shard")
    conditions: Path = flag("directory of OpenPose condition images")
    head_model: Path = flag("head-model file (.npz or FLAME .pkl)")
    out_images: Path = flag("folder of the rendered images to write")
    out_table: Path = flag("render parquet to write (one row per image)")
    out_heads: Path = flag("render_heads parquet to write (the truth of each head)")
    out_stats: Path = flag("stats JSON to write")
    work_dir: Path = flag("scratch kept across a killed run, for resuming")


def render(params: dict, job: RenderJob) -> dict:
    """Render one shard; returns the stats written to ``job.out_stats``."""
    from ..io import atomic_dir, write_json
    from ..render import RenderContext, get_backend
    from ..schemas import from_rows, read_table, write_table
    from ..tracking import log_run, split_timings

    backend_name = params["render"]["backend"]
    backend = get_backend(backend_name)
    captions = read_table(job.captions, "captions")
    poses = read_table(job.poses, "poses")
    start = time.perf_counter()
    with atomic_dir(job.out_images) as images_dir:
        ctx = RenderContext(
            params=params,
            shard=job.shard,
            captions=captions,
            poses=poses,
            conditions_dir=Path(job.conditions),
            images_dir=images_dir,
            work_dir=Path(job.work_dir),
            head_model=Path(job.head_model),
        )
        result = backend.render_shard(ctx)
        write_table(from_rows("render", result.images), job.out_table, "render")
        write_table(from_rows("render_heads", result.heads), job.out_heads, "render_heads")
    stats, timings = split_timings(
        {"backend": backend_name, "images": len(result.images), "heads": len(result.heads), **result.stats}
    )
    timings["seconds"] = round(time.perf_counter() - start, 3)
    if not stats["images"] or (not stats["heads"] and backend_name == "procedural"):
        # every later stage of the shard will be empty: say why here
        stats["why_empty"] = (
            f"no {'image' if not stats['images'] else 'head'}: the shard's poses hold no person "
            f"(data/poses/{job.shard}.stats.json)"
            if not poses.num_rows
            else "no image"
            if not stats["images"]
            else "no head is visible in any image (all occluded or outside the canvas)"
        )
    if "why_empty" in stats:
        log.warning("shard %s: %s", job.shard, stats["why_empty"])
    write_json(job.out_stats, stats)  # no wall-clock figures: same inputs, same bytes (they go to the log and MLflow)
    log_run("render", params, shard=job.shard, metrics={**stats, **timings}, run_params={"render": params["render"]})
    log.info(
        "shard %s: %d images, %d heads with %s; timings %s",
        job.shard,
        stats["images"],
        stats["heads"],
        backend_name,
        timings,
    )
    return stats


def _cli(job: RenderJob) -> int:
    from ..config import load_params

    render(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "render",
        RenderJob,
        _cli,
        help="render images for one shard (procedural, tiny-sdxl or sdxl)",
        description=__doc__,
    )
