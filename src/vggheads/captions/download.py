"""Fetch the sampled rows' images with img2dataset into one webdataset shard; read such shards back.

img2dataset (what LAION's users run) downloads with retries and X-Robots-Tag opt-outs honoured,
decodes, resizes (the paper: smallest side to 1024) and re-encodes. It runs on parts of
``parts_size`` rows in a work folder with ``incremental_mode="incremental"``: a killed job rerun
skips the finished parts. The parts are then merged into one ``.tar`` (members in key order,
headers normalised: no time stamps or owners, so the same downloaded bytes give the same shard) and
one ``images`` table with a row per requested image and its failure class.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections import Counter
from pathlib import Path
from typing import Iterator

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
# img2dataset's error messages -> our failure classes (first match wins).
FAILURES = (
    ("http_404", ("HTTP Error 404",)),
    ("http_error", ("HTTP Error",)),
    ("timeout", ("timed out", "timeout", "Timeout")),
    ("too_small", ("image too small",)),
    ("aspect_ratio", ("aspect ratio too large",)),
    ("too_large", ("image area too large",)),
    ("undecodable", ("Image decoding error", "cannot identify", "decod")),  # not an image, or truncated
    ("opted_out", ("X-Robots-Tag",)),
    ("hash_mismatch", ("hash mismatch",)),
    ("connection", ("Connection", "connection", "urlopen error", "Name or service", "Errno", "Remote end")),
)
FAILURE_CLASSES = [name for name, _ in FAILURES] + ["other"]


def failure_class(message: str | None) -> str:
    if not message:
        return ""
    for name, needles in FAILURES:
        if any(n in message for n in needles):
            return name
    return "other"


def _run_img2dataset(rows_path: Path, work: Path, cfg: dict) -> None:
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations checks PyPI for updates on import
    os.environ.setdefault("WANDB_MODE", "disabled")
    import contextlib

    from img2dataset import download

    # img2dataset prints progress on stdout; the rule's log takes stderr and stdout alike.
    with contextlib.redirect_stdout(__import__("sys").stderr):
        download(
            url_list=str(rows_path),
            input_format="parquet",
            url_col="url",
            save_additional_columns=["sample_id"],
            output_format="webdataset",
            output_folder=str(work),
            processes_count=1,
            thread_count=cfg["threads"],
            number_sample_per_shard=cfg["part_size"],
            timeout=cfg["timeout"],
            retries=cfg["retries"],
            image_size=cfg["image_size"],
            resize_mode=cfg["resize_mode"],
            resize_only_if_bigger=cfg["resize_only_if_bigger"],
            encode_format="jpg",
            encode_quality=cfg["jpeg_quality"],
            min_image_size=cfg["min_image_size"],
            max_aspect_ratio=cfg["max_aspect_ratio"],
            extract_exif=False,
            compute_hash="sha256",
            incremental_mode="incremental",
            enable_wandb=False,
            user_agent_token="vggheads",
            disallowed_header_directives=list(cfg["disallowed_header_directives"]),
            distributor="multiprocessing",
        )


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    out = tarfile.TarInfo(info.name)
    out.size, out.mode, out.mtime = info.size, 0o644, 0
    out.uid = out.gid = 0
    out.uname = out.gname = ""
    return out


def merge_parts(work: Path, out_tar: Path) -> list[dict]:
    """Merge the parts' tars into ``out_tar`` (atomically); return one row per requested image."""
    import pyarrow.parquet as pq

    from ..io import atomic_path

    parts = sorted(p for p in work.glob("*.parquet") if p.stem.isdigit())
    rows: list[dict] = []
    for part in parts:
        for r in pq.read_table(part).to_pylist():
            failure = failure_class(r.get("error_message")) if r.get("status") != "success" else ""
            rows.append(
                {
                    "sample_id": r.get("sample_id") or "",
                    "url": r.get("url") or "",
                    "key": r.get("key") or "" if r.get("status") == "success" else "",
                    "status": r.get("status") or "",
                    "failure": failure,
                    "error_message": r.get("error_message") or "",
                    "width": r.get("width"),
                    "height": r.get("height"),
                    "original_width": r.get("original_width"),
                    "original_height": r.get("original_height"),
                    "sha256": r.get("sha256") or "",
                }
            )
    with atomic_path(out_tar) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as dst:
            for part in parts:
                tar_path = part.with_suffix(".tar")
                if not tar_path.exists():
                    continue
                with tarfile.open(tar_path) as src:
                    members = sorted((m for m in src.getmembers() if m.isfile()), key=lambda m: m.name)
                    for m in members:
                        dst.addfile(_normalised(m), src.extractfile(m))
    rows.sort(key=lambda r: (r["sample_id"], r["url"]))
    return rows


def download_shard(rows: list[dict], work: Path, out_tar: Path, cfg: dict) -> tuple[list[dict], dict]:
    """Download ``rows`` (dicts with sample_id, url) into ``out_tar``; return (image rows, counts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    work.mkdir(parents=True, exist_ok=True)
    requested = work / "requested.parquet"
    table = pa.table({"url": [r["url"] for r in rows], "sample_id": [r["sample_id"] for r in rows]})
    if not requested.exists() or not pq.read_table(requested).equals(table):
        # Different rows than a killed earlier attempt: start over.
        import shutil

        for stale in work.iterdir():
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        pq.write_table(table, requested)
    out = work / "parts"
    _run_img2dataset(requested, out, cfg)
    image_rows = merge_parts(out, out_tar)
    counts = Counter(r["failure"] or "downloaded" for r in image_rows)
    return image_rows, {
        "requested": len(rows),
        "downloaded": counts.pop("downloaded", 0),
        "failed": {name: counts.get(name, 0) for name in FAILURE_CLASSES},
    }


def iter_shard(tar_path: str | os.PathLike) -> Iterator[tuple[dict, bytes]]:
    """Yield (metadata json, image bytes) for each sample of a webdataset shard written by img2dataset."""
    from ..errors import InputError

    try:
        with tarfile.open(tar_path) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            for name in sorted(members):
                if not name.endswith(".json"):
                    continue
                stem = name[:-5]
                img = next((members[stem + e] for e in IMAGE_EXTS if stem + e in members), None)
                if img is None:
                    continue
                try:
                    meta = json.loads(tar.extractfile(members[name]).read())
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                yield meta, tar.extractfile(img).read()
    except tarfile.TarError as exc:
        raise InputError(f"{tar_path}: not a readable webdataset .tar shard ({exc})") from None


def decode(data: bytes):
    """A PIL RGB image, or None when the bytes are not a complete image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")
    except Exception:
        return None
