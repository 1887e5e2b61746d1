"""Stage ``render``: images for one shard from its captions and pose conditions.

Backends: ``procedural`` (rasterised 3D heads on simple bodies, exact per-head truth),
``sdxl`` (diffusers SDXL + T2I-Adapter/ControlNet, real weights) and ``tiny-sdxl`` (the same
diffusers code path with tiny random weights, for CPUs and tests).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def render(
    params: dict,
    shard: str,
    captions_path: Path,
    poses_path: Path,
    conditions_dir: Path,
    head_model: Path,
    out_images: Path,
    out_table: Path,
    out_heads: Path,
    out_stats: Path,
    work_dir: Path,
) -> dict:
    """Render one shard; returns the stats written to ``out_stats``."""
    from ..io import atomic_dir, write_json
    from ..render import RenderContext, get_backend
    from ..schemas import from_rows, read_table, write_table
    from ..tracking import log_run, split_timings

    backend_name = params["render"]["backend"]
    backend = get_backend(backend_name)
    captions = read_table(captions_path, "captions")
    poses = read_table(poses_path, "poses")
    start = time.perf_counter()
    with atomic_dir(out_images) as images_dir:
        ctx = RenderContext(
            params=params,
            shard=shard,
            captions=captions,
            poses=poses,
            conditions_dir=Path(conditions_dir),
            images_dir=images_dir,
            work_dir=Path(work_dir),
            head_model=Path(head_model),
        )
        result = backend.render_shard(ctx)
        write_table(from_rows("render", result.images), out_table, "render")
        write_table(from_rows("render_heads", result.heads), out_heads, "render_heads")
    stats, timings = split_timings(
        {"backend": backend_name, "images": len(result.images), "heads": len(result.heads), **result.stats}
    )
    timings["seconds"] = round(time.perf_counter() - start, 3)
    if not stats["images"] or (not stats["heads"] and backend_name == "procedural"):
        # every later stage of the shard will be empty: say why here
        stats["why_empty"] = (
            f"no {'image' if not stats['images'] else 'head'}: the shard's poses hold no person "
            f"(data/poses/{shard}.stats.json)"
            if not poses.num_rows
            else "no image"
            if not stats["images"]
            else "no head is visible in any image (all occluded or outside the canvas)"
        )
    if "why_empty" in stats:
        log.warning("shard %s: %s", shard, stats["why_empty"])
    write_json(out_stats, stats)  # no wall-clock figures: same inputs, same bytes (they go to the log and MLflow)
    log_run("render", params, shard=shard, metrics={**stats, **timings}, run_params={"render": params["render"]})
    log.info(
        "shard %s: %d images, %d heads with %s; timings %s",
        shard,
        stats["images"],
        stats["heads"],
        backend_name,
        timings,
    )
    return stats


def _cli(args: argparse.Namespace) -> int:
    from ..config import load_params

    params = load_params(args.params)
    render(
        params,
        args.shard,
        args.captions,
        args.poses,
        args.conditions,
        args.head_model,
        args.out_images,
        args.out_table,
        args.out_heads,
        args.out_stats,
        args.work_dir,
    )
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "render",
        help="render images for one shard (procedural, tiny-sdxl or sdxl)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--shard", required=True)
    p.add_argument("--captions", type=Path, required=True, help="captions parquet of the shard")
    p.add_argument("--poses", type=Path, required=True, help="poses parquet of the shard")
    p.add_argument("--conditions", type=Path, required=True, help="directory of OpenPose condition images")
    p.add_argument("--head-model", type=Path, required=True, help="head-model file (.npz or FLAME .pkl)")
    p.add_argument("--out-images", type=Path, required=True)
    p.add_argument("--out-table", type=Path, required=True)
    p.add_argument("--out-heads", type=Path, required=True)
    p.add_argument("--out-stats", type=Path, required=True)
    p.add_argument("--work-dir", type=Path, required=True, help="scratch kept across a killed run, for resuming")
    p.set_defaults(func=_cli)
