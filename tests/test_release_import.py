"""``dataset.source: release``: the released dataset's layout imported into the manifests, without the
real files. A small release tree is written by ``vggheads export`` (the exact layout), imported back
(boxes and parameters must come back), then broken in every way the issue lists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


@pytest.fixture(scope="module")
def toy_release(tmp_path_factory, head_model_file):
    """Procedural manifests (5 val + 7 train images, shards 00000 and 00002) and their export as a release tree."""
    from vggheads.manifest.to_release import export_release
    from vggheads.model.toydata import make_manifest
    from vggheads.schemas import read_table, write_table

    root = tmp_path_factory.mktemp("toy_release")
    images, heads = make_manifest(
        head_model_file, root / "manifest", n_train=7, n_val=5, size=96, max_persons=3, seed=3
    )
    table = read_table(images, "images")
    shard = pa.array(["00000" if s == "val" else "00002" for s in table["split"].to_pylist()], pa.string())
    write_table(table.set_column(table.schema.get_field_index("shard"), "shard", shard), images, "images")
    export_release(root / "manifest", root / "VGGHeads" / "large", image_format="jpg")
    return root


def _read(path: Path):
    return pq.read_table(path).to_pandas()


def _import(root, split, head_model, out, **kw):
    from vggheads.release.importer import import_split

    return import_split(
        root, split, head_model, out / split, out / "manifest", "val" if int(split) < 2 else "train", **kw
    )


def test_export_writes_the_release_layout(toy_release):
    large = toy_release / "VGGHeads" / "large"
    assert sorted(p.name for p in large.iterdir()) == ["split_00000", "split_00002"]
    for split in large.iterdir():
        assert (split / "files.txt").read_text() == ""
        stems = sorted(p.stem for p in (split / "images").glob("*.jpg"))
        assert stems and stems == sorted(p.stem for p in (split / "annotations").glob("*.npz"))
        z = np.load(split / "annotations" / f"{stems[0]}.npz")
        n = len(z["bbox"])
        assert (
            z["bbox"].shape == (n, 4) and z["extended_bbox"].shape == (n, 4) and z["3dmm_params"].shape == (n, 1, 413)
        )
        assert z["extended_bbox"].dtype.kind == "i"


def test_export_import_round_trip_reproduces_boxes_and_parameters(toy_release, head_model_file, tmp_path):
    from vggheads.release.layout import list_splits

    root = toy_release / "VGGHeads"
    assert list_splits(root) == ["00000", "00002"] == list_splits(root / "large")
    stats = [_import(root, s, head_model_file, tmp_path) for s in ("00000", "00002")]
    assert [s["images"] for s in stats] == [5, 7] and all(not s["dropped"] for s in stats)
    orig_heads = (
        _read(toy_release / "manifest" / "heads.parquet").sort_values(["image_id", "head"]).reset_index(drop=True)
    )
    orig_images = _read(toy_release / "manifest" / "images.parquet").set_index("image_id")
    heads = pd_concat([_read(tmp_path / s / "heads.parquet") for s in ("00000", "00002")])
    heads = heads.sort_values(["image_id", "head"]).reset_index(drop=True)
    assert len(heads) == len(orig_heads) and (heads.image_id == orig_heads.image_id).all()
    assert (heads["head"] == orig_heads["head"]).all()
    stack = lambda col, df: np.stack(df[col].to_numpy()).astype(np.float64)
    assert np.allclose(stack("box", heads), stack("box", orig_heads), atol=1e-3)
    assert np.allclose(stack("extended_box", heads), np.rint(stack("extended_box", orig_heads)))
    assert np.allclose(stack("flame_params", heads), stack("flame_params", orig_heads), rtol=1e-5, atol=2e-3)
    # derived from the vertices: the renderer's exact landmarks and pose come back
    lm, lm0 = stack("landmarks", heads).reshape(-1, 68, 3), stack("landmarks", orig_heads).reshape(-1, 68, 3)
    assert np.abs(lm[..., :2] - lm0[..., :2]).max() < 1e-2
    for angle in ("yaw", "pitch", "roll"):
        assert np.abs(heads[angle].to_numpy() - orig_heads[angle].to_numpy()).max() < 1e-2
    assert set(heads.labeller) == {"release"} and heads.score.isna().all()
    assert (heads.split == np.where(heads.image_id.map(orig_images.split) == "val", "val", "train")).all()
    # images: referenced where they lie, sizes from the files
    images = pd_concat([_read(tmp_path / s / "images.parquet") for s in ("00000", "00002")]).set_index("image_id")
    for image_id, row in images.iterrows():
        path = (tmp_path / "manifest" / row.path).resolve()
        assert path == (root / "large" / f"split_{row.shard}" / "images" / f"{image_id}.jpg").resolve()
        assert (row.width, row.height) == (96, 96) and row.n_heads == orig_images.loc[image_id, "n_heads"]
    assert not any((tmp_path / "00000" / "images").iterdir()), "reference mode copies nothing"
    # head and face boxes of the decoded vertices contain the landmarks of the face
    boxes = pd_concat([_read(tmp_path / s / "head_boxes.parquet") for s in ("00000", "00002")])
    boxes = boxes.sort_values(["image_id", "head"]).reset_index(drop=True)
    face, head = stack("face_box", boxes), stack("head_box", boxes)
    inner = lm[:, 17:, :2]  # the 51 inner landmarks lie on the face
    assert (inner[..., 0] >= face[:, None, 0] - 1e-3).all() and (inner[..., 1] <= face[:, None, 3] + 1e-3).all()
    assert (head[:, :2] <= face[:, :2] + 1e-3).all() and (head[:, 2:] >= face[:, 2:] - 1e-3).all()


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def test_chunk_size_does_not_change_the_tables(toy_release, head_model_file, tmp_path):
    root = toy_release / "VGGHeads"
    _import(root, "00002", head_model_file, tmp_path / "big", chunk=4096)
    _import(root, "00002", head_model_file, tmp_path / "small", chunk=2, row_group_size=3)
    for name in ("images", "heads", "head_boxes"):
        a = pq.read_table(tmp_path / "big" / "00002" / f"{name}.parquet").to_pandas()
        b = pq.read_table(tmp_path / "small" / "00002" / f"{name}.parquet").to_pandas()
        assert list(a.columns) == list(b.columns) and len(a) == len(b)
        for col in a.columns:
            x, y = a[col].to_numpy(), b[col].to_numpy()
            if x.dtype == object and isinstance(x[0], np.ndarray):
                x, y = np.stack(x), np.stack(y)
            if x.dtype.kind == "f":  # a batched matrix product may round the last bit differently per batch size
                assert np.allclose(x, y, rtol=1e-6, atol=1e-5, equal_nan=True), (name, col)
            else:
                assert (x == y).all(), (name, col)
    assert pq.ParquetFile(tmp_path / "small" / "00002" / "heads.parquet").num_row_groups > 1


def test_copy_and_link_modes_put_the_images_beside_the_tables(toy_release, head_model_file, tmp_path):
    root = toy_release / "VGGHeads"
    for mode in ("copy", "link"):
        _import(root, "00000", head_model_file, tmp_path / mode, images=mode)
        images = _read(tmp_path / mode / "00000" / "images.parquet")
        for path in images.path:
            p = (tmp_path / mode / "manifest" / path).resolve()
            assert p.parent == (tmp_path / mode / "00000" / "images").resolve() and p.exists()


def _jpg(path: Path, w=40, h=30):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path, quality=90)


def _npz(path: Path, n=1, length=413, **override):
    path.parent.mkdir(parents=True, exist_ok=True)
    p = np.zeros((n, 1, length), np.float32)
    if length == 413:
        p[:, 0, 403:409] = [1, 0, 0, 0, -1, 0]  # frontal rotation (6D)
        p[:, 0, 412] = -0.8  # s + 1 = 0.2: 25.6 px per unit on the 256 crop
    arrays = {
        "bbox": np.tile(np.array([[5, 5, 20, 20]], np.float32), (n, 1)),
        "extended_bbox": np.tile(np.array([[1, 1, 28, 28]], np.int32), (n, 1)),
        "3dmm_params": p,
    }
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)


def test_bad_input_is_a_counted_drop_naming_the_file(head_model_file, tmp_path):
    split = tmp_path / "rel" / "large" / "split_00001"
    img, ann = split / "images", split / "annotations"
    _jpg(img / "good.jpg"), _npz(ann / "good.npz", n=2)
    _jpg(img / "no_ann.jpg")
    _npz(ann / "no_image.npz")
    _jpg(img / "corrupt.jpg"), (ann / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    _jpg(img / "nokey.jpg"), _npz(ann / "nokey.npz", **{"3dmm_params": None})
    _jpg(img / "short.jpg"), _npz(ann / "short.npz", length=412)
    _jpg(img / "shape.jpg"), _npz(ann / "shape.npz", bbox=np.zeros((2, 4), np.float32))
    _jpg(img / "removed.jpg"), _npz(ann / "removed.npz")
    (img / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated"), _npz(ann / "broken.npz")
    _jpg(img / "empty.jpg"), _npz(ann / "empty.npz", n=0)
    nan = np.zeros((2, 1, 413), np.float32)
    nan[:, 0, 403:409] = [1, 0, 0, 0, -1, 0]
    nan[:, 0, 412] = -0.8
    nan[1, 0, 5] = np.nan
    _jpg(img / "halfnan.jpg"), _npz(ann / "halfnan.npz", n=2, **{"3dmm_params": nan})
    (split / "files.txt").write_text("removed.jpg\n\nalso_gone.jpg\n")
    stats = _import(tmp_path / "rel", "00001", head_model_file, tmp_path / "out")
    assert stats["images"] == 2 and stats["heads"] == 3  # good (2 heads), halfnan (1 of 2)
    assert stats["removed_in_files_txt"] == 2 and stats["listed"]["files_txt"] == 2
    assert stats["dropped"] == {
        "annotation_without_image": 1,
        "image_without_annotation": 1,
        "missing_key": 1,
        "no_heads": 1,
        "params_length": 1,
        "removed_in_files_txt": 2,
        "unreadable_image": 1,
        "unreadable_npz": 1,
        "wrong_shape": 1,
    }
    assert stats["dropped_heads"] == {"non_finite_params": 1}
    ex = stats["dropped_examples"]
    assert ex["params_length"][0].startswith("annotations/short.npz") and "412" in ex["params_length"][0]
    assert ex["image_without_annotation"] == ["images/no_ann.jpg"] and ex["unreadable_image"] == ["images/broken.jpg"]
    assert ex["missing_key"][0].startswith("annotations/nokey.npz") and "3dmm_params" in ex["missing_key"][0]
    assert ex["non_finite_params"] == ["annotations/halfnan.npz#1"]
    written = json.loads((tmp_path / "out" / "00001" / "stats.json").read_text())
    assert written["dropped"] == stats["dropped"]
    heads = _read(tmp_path / "out" / "00001" / "heads.parquet")
    assert sorted(zip(heads.image_id, heads["head"])) == [("good", 0), ("good", 1), ("halfnan", 0)]
    # the hand-made head: s = 0.2 * 128 = 25.6 px/unit, t = 128 + crop origin (1, 1) ... in image pixels
    p = np.stack(heads.flame_params.to_numpy())[0]
    assert p[412] == pytest.approx(25.6) and p[409:411] == pytest.approx([129.0, 129.0])


def test_an_unusable_split_is_an_error_and_writes_nothing(head_model_file, tmp_path):
    from vggheads.errors import InputError

    split = tmp_path / "rel" / "split_00003"
    _jpg(split / "images" / "a.jpg"), _npz(split / "annotations" / "a.npz", length=300)
    _jpg(split / "images" / "b.jpg"), _npz(split / "annotations" / "b.npz", length=300)
    with pytest.raises(InputError, match=r"split_00003: unusable split: none of its 2 ids.*params_length.*a\.npz"):
        _import(tmp_path / "rel", "00003", head_model_file, tmp_path / "out")
    assert (
        not list((tmp_path / "out" / "00003").glob("*.parquet"))
        and not (tmp_path / "out" / "00003" / "stats.json").exists()
    )
    (tmp_path / "rel" / "split_00004" / "images").mkdir(parents=True)
    with pytest.raises(InputError, match="split_00004: unusable split: no annotations folder"):
        _import(tmp_path / "rel", "00004", head_model_file, tmp_path / "out")
    with pytest.raises(InputError, match="split folder not found"):
        _import(tmp_path / "rel", "00009", head_model_file, tmp_path / "out")
    with pytest.raises(InputError, match="release root .* not found.*CC BY-NC 4.0"):
        _import(tmp_path / "nowhere", "00000", head_model_file, tmp_path / "out")


def test_release_manifest_gathers_splits_and_refuses_duplicate_ids(toy_release, head_model_file, tmp_path, params):
    from vggheads.errors import InputError
    from vggheads.stages.release_manifest import ReleaseManifestJob, release_manifest

    root = toy_release / "VGGHeads"
    for s in ("00000", "00002"):
        _import(root, s, head_model_file, tmp_path)
    params["dataset"]["release"]["root"] = str(root)
    card = release_manifest(
        params,
        ReleaseManifestJob(
            splits=["00000", "00002"],
            split_dirs=[tmp_path / "00000", tmp_path / "00002"],
            out_dir=tmp_path / "manifest",
            card=tmp_path / "card.json",
            plots=tmp_path / "plots",
        ),
    )
    assert card["images"] == 12 and card["splits"]["val"]["images"] == 5 and card["splits"]["train"]["images"] == 7
    assert card["source"] == "release" and card["release"]["removed_in_files_txt"] == 0
    from vggheads.model.dataset import load_manifest

    train = load_manifest(tmp_path / "manifest" / "images.parquet", tmp_path / "manifest" / "heads.parquet", "train")
    assert len(train) == 7, "the training code reads the imported manifests"
    assert (tmp_path / "plots" / "yaw.png").exists()
    with pytest.raises(InputError, match="is in split_00000 and split_00000"):
        release_manifest(
            params,
            ReleaseManifestJob(
                splits=["00000", "00000"],
                split_dirs=[tmp_path / "00000", tmp_path / "00000"],
                out_dir=tmp_path / "manifest2",
                card=tmp_path / "card2.json",
                plots=tmp_path / "plots2",
            ),
        )
    assert not (tmp_path / "manifest2" / "images.parquet").exists(), "never a half-written manifest"


def test_fast_npz_reader_matches_numpy(tmp_path):
    from vggheads.release.importer import read_npz

    rng = np.random.default_rng(0)
    arrays = {
        "bbox": rng.random((3, 4), dtype=np.float32),
        "extended_bbox": rng.integers(0, 9, (3, 4)).astype(np.int32),
        "3dmm_params": rng.random((3, 1, 413), dtype=np.float32),
        "f": np.asfortranarray(rng.random((3, 5))),
    }
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez_compressed(tmp_path / "b.npz", **arrays)
    for name in ("a.npz", "b.npz"):
        got = read_npz(tmp_path / name)
        assert set(got) == set(arrays) and all(np.array_equal(got[k], arrays[k]) for k in arrays)
    raw = (tmp_path / "a.npz").read_bytes()
    (tmp_path / "c.npz").write_bytes(raw[: len(raw) // 2] + raw[-22:])
    with pytest.raises(Exception):
        read_npz(tmp_path / "c.npz")


def test_jpeg_size_from_the_header(tmp_path):
    from PIL import Image

    from vggheads.release.importer import image_size

    Image.fromarray(np.zeros((37, 53, 3), np.uint8)).save(tmp_path / "a.jpg")
    Image.fromarray(np.zeros((37, 53, 3), np.uint8)).save(tmp_path / "p.jpg", progressive=True)
    Image.fromarray(np.zeros((11, 7, 3), np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.zeros((37, 53, 3), np.uint8)).save(
        tmp_path / "icc.jpg", icc_profile=bytes(30000)
    )  # SOF after 30 KB
    assert (
        image_size(tmp_path / "a.jpg") == (53, 37) == image_size(tmp_path / "p.jpg") == image_size(tmp_path / "icc.jpg")
    )
    assert image_size(tmp_path / "b.png") == (7, 11)
    (tmp_path / "x.jpg").write_bytes(b"nothing")
    assert image_size(tmp_path / "x.jpg") is None


@pytest.mark.parametrize("model_name", ["project", "tiny"])
def test_subset_decoder_matches_the_full_decoding(model_name, head_model):
    """The import's numpy decoder = FlameLayer + decode (torch) on every derived value, with all 400
    components, a jaw, any rotation; the tiny model's face is not inside its head (the index path)."""
    import torch

    from test_model import tiny_head_model
    from vggheads.geometry import FlameLayer, angles_to_matrix, decode, matrix_to_rot6d
    from vggheads.labelling.base import decode_labels
    from vggheads.release.convert import SubsetDecoder

    model = head_model if model_name == "project" else tiny_head_model()
    rng = np.random.default_rng(5)
    n = 300
    p = np.zeros((n, 413), np.float32)
    p[:, :400] = rng.normal(0, 1, (n, 400))
    p[:, 400:403] = rng.normal(0, 0.15, (n, 3))
    R = angles_to_matrix(rng.uniform(-80, 80, n), rng.uniform(-50, 50, n), rng.uniform(-40, 40, n))
    p[:, 403:409] = matrix_to_rot6d(torch.from_numpy(np.asarray(R))).numpy() * rng.uniform(0.5, 2, (n, 1))
    p[:, 409:412] = rng.uniform(0, 600, (n, 3))
    p[:, 412] = rng.uniform(200, 2000, n)
    got = SubsetDecoder(model, batch=64)(p)
    layer = FlameLayer(model)
    ref = decode_labels(p, layer)
    v = decode(torch.from_numpy(p), layer).vertices_image.numpy()[..., :2]
    box = lambda ids: np.concatenate([v[:, ids].min(1), v[:, ids].max(1)], 1)
    assert np.abs(got["landmarks"][..., :2] - ref.landmarks[..., :2]).max() < 2e-3
    assert (got["landmarks"][..., 2] == ref.landmarks[..., 2]).mean() > 0.999
    for k in ("yaw", "pitch", "roll"):
        assert np.abs(got[k] - getattr(ref, k)).max() < 1e-3
    assert np.abs(got["head_box"] - box(model.subsets["head"])).max() < 2e-3
    assert np.abs(got["face_box"] - box(model.subsets["face"])).max() < 2e-3
