"""Manifests: gathering shards, splits, schema and version, readers (pandas, polars, duckdb, HF
datasets), the dataset card, the release export, bad input."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vggheads.errors import InputError
from vggheads.schemas import META_VERSION, SCHEMA_VERSION, from_rows, write_table


def _label_row(sid, head, rng, box=None):
    box = np.asarray(box if box is not None else [10 + 20 * head, 10, 40 + 20 * head, 50], dtype=np.float32)
    params = np.zeros(413, dtype=np.float32)
    params[:10] = rng.normal(size=10)
    params[403:409] = [1, 0, 0, 0, -1, 0]
    params[409:412] = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 5.0]
    params[412] = 150.0
    return {
        "sample_id": sid,
        "head": head,
        "box": box,
        "extended_box": np.floor(box + [-5, -5, 5, 5]).astype(np.float32),
        "score": 0.9,
        "flame_params": params,
        "landmarks": rng.normal(size=204).astype(np.float32),
        "yaw": float(rng.uniform(-90, 90)),
        "pitch": float(rng.uniform(-30, 30)),
        "roll": float(rng.uniform(-20, 20)),
        "labeller": "truth",
    }


def make_shards(root: Path, n_shards=3, n_images=4, seed=0):
    """Render/labels/filter tables laid out as the pipeline writes them. Per shard: image 0 dropped by
    the filter, image 1 kept without labelled heads, the others kept with 1-3 heads."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    shards = []
    for s in range(n_shards):
        shard = f"{s:05d}"
        (root / "render" / shard).mkdir(parents=True)
        render, labels, filt = [], [], []
        for i in range(n_images):
            sid = f"{shard}_{i:06d}"
            Image.fromarray(np.full((64, 96, 3), 40 * i, np.uint8)).save(root / "render" / shard / f"{sid}.png")
            render.append(
                {
                    "sample_id": sid,
                    "image": f"{sid}.png",
                    "width": 96,
                    "height": 64,
                    "backend": "procedural",
                    "seed": i,
                    "prompt": f"prompt {i}",
                    "negative_prompt": "",
                    "base_model": "procedural",
                    "condition_model": "coco17",
                    "seconds": 0.1,
                }
            )
            keep = i != 0
            filt.append(
                {"sample_id": sid, "keep": keep, "reason": "" if keep else "flip_count", "n_heads": 2, "stability": 0.9}
            )
            if i >= 2:
                labels += [_label_row(sid, h, rng) for h in range(1 + (i + s) % 3)]
        write_table(from_rows("render", render), root / "render" / f"{shard}.parquet", "render")
        write_table(from_rows("labels", labels), root / "labels" / f"{shard}.parquet", "labels")
        write_table(from_rows("filter", filt), root / "filter" / f"{shard}.parquet", "filter")
        (root / "labels" / f"{shard}.stats.json").write_text(json.dumps({"labeller": "truth", "quality": {}}))
        shards.append(shard)
    return shards


@pytest.fixture
def built(tmp_path, params):
    from vggheads.stages.build_manifest import BuildManifestJob, build_manifest_stage

    shards = make_shards(tmp_path)
    params["tracking"]["enabled"] = False
    params["manifest"].update(val_shards=1, row_group_size=3)
    card = build_manifest_stage(
        params,
        BuildManifestJob(
            shards=shards,
            render_tables=[tmp_path / "render" / f"{s}.parquet" for s in shards],
            labels=[tmp_path / "labels" / f"{s}.parquet" for s in shards],
            filters=[tmp_path / "filter" / f"{s}.parquet" for s in shards],
            label_stats=[tmp_path / "labels" / f"{s}.stats.json" for s in shards],
            out_dir=tmp_path / "manifest",
            card=tmp_path / "metrics" / "dataset_card.json",
            quality=tmp_path / "metrics" / "label_quality.json",
            plots=tmp_path / "plots" / "dataset",
        ),
    )
    return tmp_path, card


def test_manifest_rows_splits_and_paths(built):
    root, card = built
    images = pq.read_table(root / "manifest" / "images.parquet").to_pylist()
    heads = pq.read_table(root / "manifest" / "heads.parquet").to_pylist()
    assert len(images) == 3 * 2  # per shard: 2 kept images with labelled heads
    assert {i["image_id"][-1] for i in images} == {"2", "3"}
    assert {i["shard"]: i["split"] for i in images} == {"00000": "val", "00001": "train", "00002": "train"}
    assert sum(i["n_heads"] for i in images) == len(heads)
    for im in images:
        assert (root / "manifest" / im["path"]).exists()  # paths relative to the manifest directory
    ids = {i["image_id"] for i in images}
    assert {h["image_id"] for h in heads} == ids
    assert all(h["split"] == ("val" if h["image_id"].startswith("00000") else "train") for h in heads)
    assert card["images"] == 6 and card["heads"] == len(heads)
    assert card["filter"]["reasons"] == {"flip_count": 3} and card["filter"]["kept_without_labelled_heads"] == 3
    assert card["filter"]["yield"] == pytest.approx(0.75)


def test_manifest_schema_fixed_lists_version_and_row_groups(built):
    root, _ = built
    pf = pq.ParquetFile(root / "manifest" / "heads.parquet")
    assert pf.schema_arrow.metadata[META_VERSION] == SCHEMA_VERSION.encode()
    assert pa.types.is_fixed_size_list(pf.schema_arrow.field("flame_params").type)
    assert pf.schema_arrow.field("flame_params").type.list_size == 413
    assert pf.schema_arrow.field("landmarks").type.list_size == 204
    assert pf.metadata.num_row_groups >= 3 and all(
        pf.metadata.row_group(i).num_rows <= 3 for i in range(pf.metadata.num_row_groups)
    )


def test_manifest_reads_in_pandas_polars_duckdb_and_hf_datasets(built, tmp_path_factory, monkeypatch):
    root, _ = built
    heads_path = root / "manifest" / "heads.parquet"
    n = pq.ParquetFile(heads_path).metadata.num_rows
    import pandas as pd

    df = pd.read_parquet(heads_path)
    assert len(df) == n and len(df["flame_params"].iloc[0]) == 413
    import polars as pl

    dp = pl.read_parquet(heads_path)
    assert dp.height == n and dp["flame_params"].dtype == pl.Array(pl.Float32, 413)
    import duckdb

    got = duckdb.sql(f"SELECT split, count(*) AS n FROM '{heads_path}' GROUP BY split ORDER BY split").fetchall()
    assert sum(c for _, c in got) == n and {s for s, _ in got} == {"train", "val"}
    assert duckdb.sql(f"SELECT len(flame_params) FROM '{heads_path}' LIMIT 1").fetchall()[0][0] == 413
    import datasets

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf")))
    ds = datasets.load_dataset(
        "parquet",
        data_files={"train": str(heads_path)},
        split="train",
        cache_dir=str(tmp_path_factory.mktemp("hfcache")),
    )
    assert len(ds) == n and len(ds[0]["flame_params"]) == 413
    np.testing.assert_allclose(ds[0]["flame_params"], df["flame_params"].iloc[0], rtol=1e-6)


def test_dataset_card_json_and_plots(built):
    root, card = built
    doc = json.loads((root / "metrics" / "dataset_card.json").read_text())
    h = doc["histograms"]
    assert sum(h["yaw_deg"]["counts"]) == doc["heads"] == sum(h["box_size_px"]["counts"])
    from vggheads.core.metrics import unitless_keys

    assert unitless_keys(doc) == []  # every key that carries an angle, NME or pixel size names its unit
    assert sum(h["heads_per_image"]["counts"]) == doc["images"]
    assert doc["splits"]["val"]["shards"] == 1 and doc["splits"]["train"]["shards"] == 2
    for name in ("heads_per_image", "yaw", "pitch", "roll", "box_size", "filter_yield"):
        assert (root / "plots" / "dataset" / f"{name}.png").stat().st_size > 1000
        lines = (root / "plots" / "dataset" / f"{name}.csv").read_text().splitlines()
        assert lines[0].endswith(",count") and len(lines) > 2
    assert json.loads((root / "metrics" / "label_quality.json").read_text())["available"] is False


def test_label_quality_gathers_shards_exactly(tmp_path):
    from vggheads.labelling.quality import QualityAccumulator
    from vggheads.stages.build_manifest import gather_label_quality

    acc = QualityAccumulator()
    st = acc.state()
    st["counts"].update(images=2, truth_heads=4, detections=4, detections_matched=3, labels=3, labels_matched=3)
    st["sums"].update(nme_pct=6.0, yaw_deg=3.0, pitch_deg=3.0, roll_deg=3.0, geodesic_deg=9.0)
    for i in range(2):
        (tmp_path / f"{i}.json").write_text(
            json.dumps({"labeller": "truth", "quality": {"truth": {"state": st, "heads_per_second": 10.0}}})
        )
    q = gather_label_quality([tmp_path / "0.json", tmp_path / "1.json"])
    assert q["available"] and q["truth"]["truth_heads"] == 8
    assert q["truth"]["detection_recall"] == 0.75 and q["truth"]["nme_pct"] == pytest.approx(2.0)
    assert q["truth"]["pose_mae_deg"] == pytest.approx(1.0)


def test_wrong_schema_version_or_table_is_a_clear_error(built, tmp_path):
    from vggheads.manifest.io import iter_batches

    root, _ = built
    table = pq.read_table(root / "manifest" / "heads.parquet")
    meta = dict(table.schema.metadata)
    meta[META_VERSION] = b"0"
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "old.parquet")
    with pytest.raises(InputError, match=r"old.parquet: schema version 0"):
        next(iter_batches(tmp_path / "old.parquet", "heads"))
    with pytest.raises(InputError, match="holds a 'images' table, expected 'heads'"):
        next(iter_batches(root / "manifest" / "images.parquet", "heads"))
    (tmp_path / "cut.parquet").write_bytes((root / "manifest" / "heads.parquet").read_bytes()[:200])
    with pytest.raises(InputError, match="not a readable parquet file"):
        next(iter_batches(tmp_path / "cut.parquet", "heads"))


def test_table_writer_is_atomic(tmp_path):
    from vggheads.manifest.io import TableWriter

    rows = from_rows("filter", [{"sample_id": "a", "keep": True, "reason": "", "n_heads": 1, "stability": 1.0}])
    with pytest.raises(RuntimeError):
        with TableWriter(tmp_path / "f.parquet", "filter", 1) as w:
            w.write(rows)
            w.write(rows)
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with TableWriter(tmp_path / "f.parquet", "filter", 2) as w:
        for _ in range(5):
            w.write(rows)
    pf = pq.ParquetFile(tmp_path / "f.parquet")
    assert pf.metadata.num_rows == 5 and [pf.metadata.row_group(i).num_rows for i in range(3)] == [2, 2, 1]
    with pytest.raises(ValueError, match="missing columns"):
        with TableWriter(tmp_path / "g.parquet", "filter") as w:
            w.write(rows.drop(["keep"]))
    assert not (tmp_path / "g.parquet").exists()


def test_export_release_layout(built, tmp_path):
    from vggheads.manifest.to_release import export_release

    root, _ = built
    stats = export_release(root / "manifest", tmp_path / "release", image_format="jpg")
    assert stats["splits"] == ["00000", "00001", "00002"] and stats["images"] == 6
    heads = pq.read_table(root / "manifest" / "heads.parquet").to_pylist()
    first = heads[0]
    npz = np.load(tmp_path / "release" / "split_00000" / "annotations" / f"{first['image_id']}.npz")
    n = sum(h["image_id"] == first["image_id"] for h in heads)
    assert (
        npz["bbox"].shape == (n, 4) and npz["extended_bbox"].shape == (n, 4) and npz["3dmm_params"].shape == (n, 1, 413)
    )
    b = np.asarray(first["box"])
    np.testing.assert_allclose(npz["bbox"][0], [b[0], b[1], b[2] - b[0], b[3] - b[1]])
    p = npz["3dmm_params"][0, 0]
    ext = np.asarray(first["extended_box"])
    # release convention: image x = ((s + 1) (R v)_x + tx + 1) / 2 * 256 + extended_bbox[0]
    assert (p[412] + 1) * 128 == pytest.approx(first["flame_params"][412], rel=1e-5)
    assert (p[409] + 1) * 128 + ext[0] == pytest.approx(first["flame_params"][409], rel=1e-5)
    assert (tmp_path / "release" / "split_00000" / "images" / f"{first['image_id']}.jpg").exists()
    assert not list(tmp_path.glob(".release*"))


def test_manifest_stage_rejects_mismatched_inputs(tmp_path, params):
    from vggheads.errors import ConfigError
    from vggheads.stages.build_manifest import BuildManifestJob, build_manifest_stage

    with pytest.raises(ConfigError, match="one render table"):
        build_manifest_stage(
            params,
            BuildManifestJob(
                shards=["00000", "00001"],
                render_tables=[tmp_path / "a"],
                labels=[tmp_path / "b"],
                filters=[tmp_path / "c"],
                label_stats=[],
                out_dir=tmp_path / "m",
                card=tmp_path / "c.json",
                quality=tmp_path / "q.json",
                plots=tmp_path / "p",
            ),
        )
