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

import logging
from dataclasses import dataclass
from pathlib import Path

from ..jobs import add_command, flag

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DownloadImagesJob:
    params: Path = flag("params file (default: params.yaml)", Path("params.yaml"))
    shard: str = flag("shard id, e.g. 00000")
    rows: Path = flag("captions parquet of the shard (url, sample_id)")
    out: Path = flag("webdataset .tar to write")
    table: Path = flag("per-image status parquet to write")
    stats: Path = flag("stats JSON to write")
    work_dir: Path = flag("img2dataset's parts (kept between attempts: resume)")


def download_images(params: dict, job: DownloadImagesJob) -> dict:
    from ..captions.download import download_shard
    from ..errors import InputError
    from ..io import write_json
    from ..schemas import from_rows, read_table, write_table
    from ..tracking import log_run

    cfg = params["captions"]["download"]
    rows = read_table(job.rows, "captions", columns=["sample_id", "url"]).to_pylist()
    rows = [r for r in rows if r["url"]]
    image_rows, counts = download_shard(rows, job.work_dir, job.out, cfg)
    write_table(from_rows("downloads", image_rows), job.table, "downloads")
    stats = {"shard": job.shard, **counts}
    write_json(job.stats, stats)
    log_run("download_images", params, shard=job.shard, metrics=stats, run_params={"captions.download": cfg})
    failed = {k: v for k, v in counts["failed"].items() if v}
    log.info(
        "shard %s: %d of %d images downloaded; failed: %s",
        job.shard,
        counts["downloaded"],
        counts["requested"],
        ", ".join(f"{k} {v}" for k, v in failed.items()) or "none",
    )
    if rows and counts["downloaded"] == 0:
        # The stats and table stay for inspection; the tar is removed so a rerun tries again.
        job.out.unlink(missing_ok=True)
        raise InputError(
            f"shard {job.shard}: none of its {len(rows)} images could be downloaded (failures: "
            f"{', '.join(f'{k} {v}' for k, v in failed.items())}; see {job.table}). Later stages would run "
            "on nothing: check the network, the URLs in captions.sources and the download settings."
        )
    if not rows:
        log.warning("shard %s: no rows to download (%s is empty)", job.shard, job.rows)
    return stats


def _cli(job: DownloadImagesJob) -> int:
    from ..config import load_params

    download_images(load_params(job.params), job)
    return 0


def register(sub) -> None:
    add_command(
        sub,
        "download-images",
        DownloadImagesJob,
        _cli,
        aliases=["download_images"],
        help="fetch one shard's photos with img2dataset",
        description=__doc__,
    )
