"""Every parquet file the pipeline writes, its pyarrow schema, and a version stored in the file.

Writers go through :func:`write_table` (atomic, schema checked, version in the metadata);
readers through :func:`read_table`, which fails with a message naming the file and the column
when a file is not what the stage expects.

Conventions: boxes are ``[x1, y1, x2, y2]`` in image pixels (float32); keypoints and landmarks are
flattened ``(x, y, v)`` triples, ``v`` being a confidence or a visibility; the 413-value 3DMM vector
is in the paper's order (see :mod:`vggheads.core.param_layout`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .core.param_layout import N_LANDMARKS, N_PARAMS  # noqa: F401 - the tables' sizes
from .errors import InputError
from .io import atomic_path

SCHEMA_VERSION = "1"
META_NAME = b"vggheads.schema"
META_VERSION = b"vggheads.schema_version"

N_COCO = 17


def _fixed(type_: pa.DataType, n: int) -> pa.DataType:
    return pa.list_(type_, n)


SCHEMAS: dict[str, pa.Schema] = {
    # sample_captions: one row per kept caption.
    "captions": pa.schema(
        [
            ("sample_id", pa.string()),
            ("shard", pa.string()),
            ("source_file", pa.string()),
            ("source_row", pa.int64()),
            ("url", pa.string()),
            ("caption", pa.string()),
            ("prompt", pa.string()),
            ("negative_prompt", pa.string()),
            ("seed", pa.int64()),
        ]
    ),
    # download_images: one row per requested photo (img2dataset's status, our failure class; key = member
    # name in the shard's webdataset .tar, empty when the download failed).
    "downloads": pa.schema(
        [
            ("sample_id", pa.string()),
            ("url", pa.string()),
            ("key", pa.string()),
            ("status", pa.string()),
            ("failure", pa.string()),
            ("error_message", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("original_width", pa.int32()),
            ("original_height", pa.int32()),
            ("sha256", pa.string()),
        ]
    ),
    # extract_poses: one row per person; COCO-17 keypoints as 17 (x, y, confidence) triples.
    "poses": pa.schema(
        [
            ("sample_id", pa.string()),
            ("person", pa.int32()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("keypoints", _fixed(pa.float32(), N_COCO * 3)),
            ("box", _fixed(pa.float32(), 4)),
            ("condition_image", pa.string()),
            ("backend", pa.string()),
        ]
    ),
    # render: one row per rendered image (any backend).
    "render": pa.schema(
        [
            ("sample_id", pa.string()),
            ("image", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("backend", pa.string()),
            ("seed", pa.int64()),
            ("prompt", pa.string()),
            ("negative_prompt", pa.string()),
            ("base_model", pa.string()),
            ("condition_model", pa.string()),
        ]
    ),
    # render (procedural backend): exact truth, one row per head.
    "render_heads": pa.schema(
        [
            ("sample_id", pa.string()),
            ("head", pa.int32()),
            ("box", _fixed(pa.float32(), 4)),
            ("flame_params", _fixed(pa.float32(), N_PARAMS)),
            ("landmarks", _fixed(pa.float32(), N_LANDMARKS * 3)),
            ("yaw", pa.float32()),
            ("pitch", pa.float32()),
            ("roll", pa.float32()),
            ("visible_fraction", pa.float32()),
        ]
    ),
    # detect_heads: one row per detected head box.
    "detections": pa.schema(
        [
            ("sample_id", pa.string()),
            ("head", pa.int32()),
            ("box", _fixed(pa.float32(), 4)),
            ("score", pa.float32()),
        ]
    ),
    # label_3dmm: one row per labelled head; flame_params in image pixels (v_img = s * R v + t).
    "labels": pa.schema(
        [
            ("sample_id", pa.string()),
            ("head", pa.int32()),
            ("box", _fixed(pa.float32(), 4)),
            ("extended_box", _fixed(pa.float32(), 4)),
            ("score", pa.float32()),
            ("flame_params", _fixed(pa.float32(), N_PARAMS)),
            ("landmarks", _fixed(pa.float32(), N_LANDMARKS * 3)),
            ("yaw", pa.float32()),
            ("pitch", pa.float32()),
            ("roll", pa.float32()),
            ("labeller", pa.string()),
        ]
    ),
    # filter: one row per image, kept or not, with the first rule that dropped it.
    "filter": pa.schema(
        [
            ("sample_id", pa.string()),
            ("keep", pa.bool_()),
            ("reason", pa.string()),
            ("n_heads", pa.int32()),
            (
                "stability",
                pa.float32(),
            ),  # mean best IoU of the boxes with those found on the flipped image (NaN: not run)
        ]
    ),
    # filter, head-mesh renders: agreement of each image with the scene it was drawn around ...
    "agreement": pa.schema(
        [
            ("sample_id", pa.string()),
            ("scene_heads", pa.int32()),
            ("detected", pa.int32()),  # the head detector's boxes on the image
            ("matched", pa.int32()),  # one-to-one matches at IoU >= filter.agreement.min_iou
            ("recall", pa.float32()),
            ("precision", pa.float32()),
            ("f1", pa.float32()),  # 2 matched / (scene heads + detected); 1 when both are 0
            ("mean_iou", pa.float32()),  # over the scene heads, 0 for one not found (NaN: no scene head)
            ("nme", pa.float32()),  # labeller landmarks vs the scene's, percent of sqrt(w h) (NaN: not measured)
            ("agree", pa.bool_()),  # passes filter.agreement's thresholds
        ]
    ),
    # ... and of each scene head.
    "agreement_heads": pa.schema(
        [
            ("sample_id", pa.string()),
            ("head", pa.int32()),
            ("box", _fixed(pa.float32(), 4)),  # the scene's
            ("detected_box", _fixed(pa.float32(), 4)),  # the matched detection (NaN: none)
            ("matched", pa.bool_()),
            ("iou", pa.float32()),  # with the matched detection, else the best overlap
            ("nme", pa.float32()),
            ("nme_visible", pa.float32()),  # over the landmarks the scene marks visible
        ]
    ),
    # build_manifest: the dataset. images.parquet, one row per kept image ...
    "images": pa.schema(
        [
            ("image_id", pa.string()),
            ("shard", pa.string()),
            ("split", pa.string()),
            ("path", pa.string()),  # relative to the manifest's directory
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("n_heads", pa.int32()),
            ("backend", pa.string()),
            ("prompt", pa.string()),
            ("seed", pa.int64()),
        ]
    ),
    # ... and heads.parquet, one row per head of a kept image.
    "heads": pa.schema(
        [
            ("image_id", pa.string()),
            ("head", pa.int32()),
            ("split", pa.string()),
            ("box", _fixed(pa.float32(), 4)),
            ("extended_box", _fixed(pa.float32(), 4)),
            ("score", pa.float32()),
            ("flame_params", _fixed(pa.float32(), N_PARAMS)),
            ("landmarks", _fixed(pa.float32(), N_LANDMARKS * 3)),
            ("yaw", pa.float32()),
            ("pitch", pa.float32()),
            ("roll", pa.float32()),
            ("labeller", pa.string()),
        ]
    ),
}


def schema(name: str) -> pa.Schema:
    if name not in SCHEMAS:
        raise KeyError(f"unknown table '{name}' (known: {', '.join(sorted(SCHEMAS))})")
    return SCHEMAS[name].with_metadata({META_NAME: name.encode(), META_VERSION: SCHEMA_VERSION.encode()})


def empty_table(name: str) -> pa.Table:
    return schema(name).empty_table()


def from_rows(name: str, rows: list[dict]) -> pa.Table:
    """Build a table of schema ``name`` from a list of dicts (numpy arrays allowed in list columns)."""
    sch = schema(name)
    if not rows:
        return sch.empty_table()
    cols = {}
    for field in sch:
        try:
            values = [row[field.name] for row in rows]
        except KeyError:
            raise KeyError(f"table '{name}': a row lacks column '{field.name}'") from None
        if pa.types.is_fixed_size_list(field.type):
            values = [
                None if v is None else [float(x) for x in (v.ravel() if hasattr(v, "ravel") else v)] for v in values
            ]
        cols[field.name] = pa.array(values, type=field.type)
    return pa.Table.from_pydict(cols, schema=sch)


def write_table(table: pa.Table, path: str | os.PathLike, name: str, row_group_size: int | None = None) -> None:
    """Write ``table`` as schema ``name`` atomically (cast to the schema; a missing column is an error)."""
    sch = schema(name)
    missing = [f.name for f in sch if f.name not in table.column_names]
    if missing:
        raise ValueError(f"table '{name}' for {path}: missing columns {missing}")
    table = table.select([f.name for f in sch]).cast(sch)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_size, compression="zstd")


def check_schema(path: str | os.PathLike, name: str, file_schema: pa.Schema) -> None:
    """Raise :class:`InputError` unless ``file_schema`` is schema ``name`` at the current version."""
    meta = file_schema.metadata or {}
    found_name = meta.get(META_NAME, b"").decode() or None
    found_version = meta.get(META_VERSION, b"").decode() or None
    if found_name is not None and found_name != name:
        raise InputError(f"{path}: holds a '{found_name}' table, expected '{name}'")
    if found_version is not None and found_version != SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema version {found_version}, this vggheads reads version {SCHEMA_VERSION}; "
            f"rebuild it with this version (e.g. rerun the stage that wrote it)"
        )
    expected = SCHEMAS[name]
    for field in expected:
        if field.name not in file_schema.names:
            raise InputError(f"{path}: column '{field.name}' missing (table '{name}' needs {expected.names})")
        got = file_schema.field(field.name).type
        if got != field.type:
            raise InputError(f"{path}: column '{field.name}' has type {got}, expected {field.type}")


def read_table(path: str | os.PathLike, name: str, columns: list[str] | None = None) -> pa.Table:
    """Read a parquet file written by :func:`write_table`, checking schema name, version and columns."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found (table '{name}')")
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError(f"{path}: not a readable parquet file ({exc})") from None
    check_schema(path, name, pf.schema_arrow)
    return pf.read(columns=columns)
