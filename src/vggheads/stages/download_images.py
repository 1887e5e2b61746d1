"""Stage ``download_images``: the sampled rows' photos, fetched with img2dataset into a webdataset shard.

One job per shard. The rows come from ``sample_captions`` (their ``url`` and ``sample_id``); the
photos are resized as the paper does (smallest side to ``download.image_size`` = 1024, JPEG) and
written to ``data/images/{shard}.tar`` with a row per requested image in ``{shard}.parquet``.
Per-row failures (404 and other HTTP errors, time-outs, not an image or truncated, too small,
opted out by X-Robots-Tag, ...) are counted in the stats, never fatal; a shard where nothing
downloads stops the run (the stages after it would run on nothing). Resumable: a killed job rerun
skips the parts img2dataset finished (``--work-dir``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def download_images(
    params: dict, shard: str, rows_path: Path, out_tar: Path, out_table: Path, stats_path: Path, work_dir: Path
) -> dict:
    from ..captions.download import download_shard
    from ..errors import InputError
    from ..io import write_json
    from ..schemas import from_rows, read_table, write_table
    from ..tracking import log_run

    cfg = params["captions"]["download"]
    rows = read_table(rows_path, "captions", columns=["sample_id", "url"]).to_pylist()
    rows = [r for r in rows if r["url"]]
    image_rows, counts = download_shard(rows, work_dir, out_tar, cfg)
    write_table(from_rows("downloads", image_rows), out_table, "downloads")
    stats = {"shard": shard, **counts}
    write_json(stats_path, stats)
    log_run("download_images", params, shard=shard, metrics=stats, run_params={"captions.download": cfg})
    failed = {k: v for k, v in counts["failed"].items() if v}
    log.info(
        "shard %s: %d of %d images downloaded; failed: %s",
        shard,
        counts["downloaded"],
        counts["requested"],
        ", ".join(f"{k} {v}" for k, v in failed.items()) or "none",
    )
    if rows and counts["downloaded"] == 0:
        # The stats and table stay for inspection; the tar is removed so a rerun tries again.
        out_tar.unlink(missing_ok=True)
        raise InputError(
            f"shard {shard}: none of its {len(rows)} images could be downloaded (failures: "
            f"{', '.join(f'{k} {v}' for k, v in failed.items())}; see {out_table}). Later stages would run "
            "on nothing: check the network, the URLs in captions.sources and the download settings."
        )
    if not rows:
        log.warning("shard %s: no rows to download (%s is empty)", shard, rows_path)
    return stats


def _cli(args: argparse.Namespace) -> int:
    from ..config import load_params

    download_images(load_params(args.params), args.shard, args.rows, args.out, args.table, args.stats, args.work_dir)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "download-images",
        aliases=["download_images"],
        help="fetch one shard's photos with img2dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--shard", required=True)
    p.add_argument("--rows", type=Path, required=True, help="captions parquet of the shard (url, sample_id)")
    p.add_argument("--out", type=Path, required=True, help="webdataset .tar to write")
    p.add_argument("--table", type=Path, required=True, help="per-image status parquet to write")
    p.add_argument("--stats", type=Path, required=True, help="stats JSON to write")
    p.add_argument("--work-dir", type=Path, required=True, help="img2dataset's parts (kept between attempts: resume)")
    p.set_defaults(func=_cli)
