"""Manifest write + read at scale: ``python benchmarks/bench_manifest.py [--heads 1000000] [--naive-heads 200000]``.

Synthetic heads.parquet + images.parquet (the real schemas: fixed-size lists of 413 parameters
and 204 landmark values, about 2.5 kB a head; parameters beyond 100 shape / 50 expression are
zero, as the procedural renders) are written and read back, each measurement in its own
subprocess so its peak RSS is its own:

- streamed (the project's way): shards of heads appended through ``TableWriter`` row group by row
  group; read back with ``iter_batches`` (every batch's parameters decoded to numpy and summed);
- naive (the baseline, same run): one in-memory table written with ``pq.write_table``, read back
  whole with ``pq.read_table``. At ``--naive-heads`` (smaller than ``--heads`` unless set equal),
  its time and RSS are extrapolated linearly to ``--heads``, and say so.

Goal: streamed write + read of 1 M heads in < 20 s with a peak RSS < 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

HEADS_PER_SHARD = 10_000
HEADS_PER_IMAGE = 2.17  # the paper: 2,219,146 heads in 1,022,944 images


def _block(n: int, seed: int = 0) -> dict:
    """Random columns for ``n`` heads (generated once, reused shard after shard)."""
    rng = np.random.default_rng(seed)
    params = np.zeros((n, 413), np.float32)
    params[:, :100] = rng.normal(size=(n, 100))
    params[:, 300:350] = rng.normal(size=(n, 50))
    params[:, 400:413] = rng.normal(size=(n, 13))
    return {
        "params": params,
        "landmarks": rng.normal(100, 50, size=(n, 204)).astype(np.float32),
        "box": rng.uniform(0, 500, size=(n, 4)).astype(np.float32),
        "angles": rng.uniform(-90, 90, size=(n, 3)).astype(np.float32),
        "score": rng.uniform(0.5, 1, size=n).astype(np.float32),
    }


def _fixed(values: np.ndarray):
    import pyarrow as pa

    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])


def shard_tables(shard: int, n_heads: int, block: dict):
    """(images, heads) pyarrow tables of one synthetic shard."""
    import pyarrow as pa

    from vggheads.schemas import schema

    n_images = int(np.ceil(n_heads / HEADS_PER_IMAGE))
    image_of = (np.arange(n_heads) * n_images // n_heads).astype(np.int64)
    ids = np.array([f"{shard:05d}_{i:06d}" for i in range(n_images)], dtype=object)
    head = (np.arange(n_heads) - np.searchsorted(image_of, image_of)).astype(np.int32)
    split = "val" if shard < 2 else "train"
    b = {k: v[:n_heads] for k, v in block.items()}
    heads = pa.Table.from_arrays(
        [
            pa.array(ids[image_of], pa.string()),
            pa.array(head),
            pa.array([split] * n_heads, pa.string()),
            _fixed(b["box"]),
            _fixed(b["box"]),
            pa.array(b["score"]),
            _fixed(b["params"]),
            _fixed(b["landmarks"]),
            pa.array(b["angles"][:, 0]),
            pa.array(b["angles"][:, 1]),
            pa.array(b["angles"][:, 2]),
            pa.array(["truth"] * n_heads, pa.string()),
        ],
        schema=schema("heads"),
    )
    counts = np.bincount(image_of, minlength=n_images).astype(np.int32)
    images = pa.Table.from_arrays(
        [
            pa.array(ids, pa.string()),
            pa.array([f"{shard:05d}"] * n_images, pa.string()),
            pa.array([split] * n_images, pa.string()),
            pa.array([f"../render/{shard:05d}/{i}.png" for i in ids], pa.string()),
            pa.array(np.full(n_images, 1024, np.int32)),
            pa.array(np.full(n_images, 1024, np.int32)),
            pa.array(counts),
            pa.array(["procedural"] * n_images, pa.string()),
            pa.array(["a photo of people"] * n_images, pa.string()),
            pa.array(np.arange(n_images, dtype=np.int64)),
        ],
        schema=schema("images"),
    )
    return images, heads


def _shards(n_heads: int):
    full, rest = divmod(n_heads, HEADS_PER_SHARD)
    return [HEADS_PER_SHARD] * full + ([rest] if rest else [])


def run_streamed(out: Path, n_heads: int, row_group_size: int, compression: str = "zstd") -> dict:
    from vggheads.manifest.io import TableWriter, iter_batches

    block = _block(HEADS_PER_SHARD)
    t0 = time.perf_counter()
    with (
        TableWriter(out / "images.parquet", "images", row_group_size, compression) as wi,
        TableWriter(out / "heads.parquet", "heads", row_group_size, compression) as wh,
    ):
        for s, n in enumerate(_shards(n_heads)):
            images, heads = shard_tables(s, n, block)
            wi.write(images)
            wh.write(heads)
    t1 = time.perf_counter()
    total, rows = 0.0, 0
    for batch in iter_batches(out / "heads.parquet", "heads", batch_size=row_group_size):
        params = batch.column("flame_params").flatten().to_numpy().reshape(-1, 413)
        total += float(params[:, 412].sum())
        rows += len(params)
    images = sum(b.num_rows for b in iter_batches(out / "images.parquet", "images"))
    t2 = time.perf_counter()
    return {"write_s": t1 - t0, "read_s": t2 - t1, "rows": rows, "images": images, "checksum": total}


def run_naive(out: Path, n_heads: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    block = _block(HEADS_PER_SHARD)
    t0 = time.perf_counter()
    parts = [shard_tables(s, n, block) for s, n in enumerate(_shards(n_heads))]
    images = pa.concat_tables([p[0] for p in parts])
    heads = pa.concat_tables([p[1] for p in parts])
    del parts
    pq.write_table(images, out / "images.parquet", compression="zstd")
    pq.write_table(heads, out / "heads.parquet", compression="zstd")
    del images, heads
    t1 = time.perf_counter()
    table = pq.read_table(out / "heads.parquet")
    params = np.stack(table.column("flame_params").to_numpy(zero_copy_only=False))  # what a quick script does
    total = float(params[:, 412].sum())
    n_img = pq.read_table(out / "images.parquet").num_rows
    t2 = time.perf_counter()
    return {"write_s": t1 - t0, "read_s": t2 - t1, "rows": int(table.num_rows), "images": n_img, "checksum": total}


def _child(mode: str, n_heads: int, row_group_size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-manifest-") as tmp:
        out = Path(tmp)
        if mode.startswith("streamed"):
            res = run_streamed(out, n_heads, row_group_size, "lz4" if mode.endswith("lz4") else "zstd")
        else:
            res = run_naive(out, n_heads)
        res["bytes"] = sum(p.stat().st_size for p in out.iterdir())
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return res


def measure(mode: str, n_heads: int, row_group_size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--heads", str(n_heads), "--row-group-size", str(row_group_size)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heads", type=int, default=1_000_000)
    ap.add_argument("--naive-heads", type=int, default=200_000, help="size of the naive baseline (extrapolated)")
    ap.add_argument("--row-group-size", type=int, default=16384)
    ap.add_argument("--lz4", action="store_true", help="also measure the streamed path with lz4 instead of zstd")
    ap.add_argument("--child", choices=["streamed", "streamed-lz4", "naive"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.heads, args.row_group_size)))
        return
    s = measure("streamed", args.heads, args.row_group_size)
    n = measure("naive", args.naive_heads, args.row_group_size)
    z = measure("streamed-lz4", args.heads, args.row_group_size) if args.lz4 else None
    f = args.heads / args.naive_heads
    print(
        f"heads: {args.heads:,} ({s['images']:,} images), row groups of {args.row_group_size}, "
        f"{s['bytes'] / 1e6:.0f} MB on disk"
    )
    print(f"{'':34s}{'write s':>9s}{'read s':>9s}{'total s':>9s}{'peak RSS MB':>13s}")
    print(
        f"{'streamed (TableWriter/iter_batches)':34s}{s['write_s']:9.2f}{s['read_s']:9.2f}"
        f"{s['write_s'] + s['read_s']:9.2f}{s['peak_rss_mb']:13.0f}"
    )
    if z:
        print(
            f"{'streamed, lz4 instead of zstd':34s}{z['write_s']:9.2f}{z['read_s']:9.2f}"
            f"{z['write_s'] + z['read_s']:9.2f}{z['peak_rss_mb']:13.0f}  ({z['bytes'] / 1e6:.0f} MB)"
        )
    label = "naive (one table)" + (f" at {args.naive_heads:,}" if f != 1 else "")
    print(f"{label:34s}{n['write_s']:9.2f}{n['read_s']:9.2f}{n['write_s'] + n['read_s']:9.2f}{n['peak_rss_mb']:13.0f}")
    if f != 1:
        print(
            f"{'naive, x' + format(f, 'g') + ' extrapolated':34s}{n['write_s'] * f:9.2f}{n['read_s'] * f:9.2f}"
            f"{(n['write_s'] + n['read_s']) * f:9.2f}{n['peak_rss_mb'] * f:13.0f}  (linear extrapolation)"
        )
    total = s["write_s"] + s["read_s"]
    print(
        f"goal < 20 s and < 1500 MB: {'met' if total < 20 and s['peak_rss_mb'] < 1500 else 'NOT met'} "
        f"({total:.1f} s, {s['peak_rss_mb']:.0f} MB); naive/streamed peak RSS ratio "
        f"{n['peak_rss_mb'] * f / s['peak_rss_mb']:.1f}x"
    )
    assert s["rows"] == args.heads


if __name__ == "__main__":
    main()
