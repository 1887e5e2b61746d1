"""Import one split of the released dataset into this project's manifest tables, streamed.

Per split ``split_000NN``: every id of ``images/`` and ``annotations/`` (sorted) is either imported
or a counted drop naming its file:

=============================  =================================================================
``removed_in_files_txt``       listed in the split's ``files.txt`` (the paper's filters removed it)
``image_without_annotation``   an image with no ``annotations/<id>.npz``
``annotation_without_image``   an ``.npz`` with no image
``unreadable_npz``             not a readable ``.npz``
``missing_key``                an ``.npz`` without ``bbox``, ``extended_bbox`` or ``3dmm_params``
``wrong_shape``                arrays not ``(N, 4)``, ``(N, 4)``, ``(N, 1, 413)``, or N disagreeing
``params_length``              a parameter vector of another length than 413
``unreadable_image``           an image whose header gives no size
``no_heads``                   N = 0, or no head left after the per-head checks
=============================  =================================================================

Per head, ``bad_box`` (non-finite, or a box or crop without area) and ``non_finite_params`` drop
only that head. A split where nothing can be imported is an error (nothing is written).

Written (atomically, row group by row group, so memory does not grow with the split):
``images.parquet`` and ``heads.parquet`` (schemas ``images``/``heads``: the release's ``bbox`` as
the head box, ``extended_bbox`` as the extended box, the parameters in image pixels, 68 landmarks
with self-occlusion visibility and yaw/pitch/roll derived from them, labeller ``release``, score
NaN: the release keeps no detector scores), ``head_boxes.parquet`` (schema ``head_boxes``: the head
and face boxes of the decoded vertices) and a stats JSON. Images are referenced where they lie
(``path`` relative to the manifest folder) unless ``images`` is ``link`` or ``copy``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import InputError
from ..schemas import SCHEMAS

log = logging.getLogger(__name__)

LABELLER = "release"
BACKEND = "release"
EXAMPLES = 20  # file names kept per drop reason in the stats
IMAGE_MODES = ("reference", "link", "copy")

# the head and face boxes of the decoded vertices, one row per head of heads.parquet
SCHEMAS.setdefault(
    "head_boxes",
    pa.schema(
        [
            ("image_id", pa.string()),
            ("head", pa.int32()),
            ("split", pa.string()),
            (
                "head_box",
                pa.list_(pa.float32(), 4),
            ),  # extent of the head model's 'head' vertices (no ears, eyeballs, neck)
            ("face_box", pa.list_(pa.float32(), 4)),  # extent of its 'face' vertices (head_detector's face box)
        ]
    ),
)

_NPY_HEADER = re.compile(rb"'descr':\s*'([^']+)',\s*'fortran_order':\s*(True|False),\s*'shape':\s*\(([^)]*)\)")


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``. Uncompressed archives (``np.savez``, the release's) are parsed
    directly from one read of the file (about 8x faster than ``np.load``); anything else goes
    through ``np.load``. Raises ValueError/OSError on a broken file."""
    with open(path, "rb") as fh:
        raw = fh.read()
    arrays = _read_stored_npz(raw)
    if arrays is not None:
        return arrays
    import io

    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _read_stored_npz(raw: bytes) -> dict[str, np.ndarray] | None:
    """A stored (not deflated), non-zip64 npz without a comment -> its arrays; None to fall back."""
    if len(raw) < 22 or raw[-22:-18] != b"PK\x05\x06":
        return None
    n_entries, _, cd_off = struct.unpack("<HII", raw[-12:-2])
    out, p, view = {}, cd_off, memoryview(raw)
    for _ in range(n_entries):
        if raw[p : p + 4] != b"PK\x01\x02":
            return None
        (method,) = struct.unpack("<H", raw[p + 10 : p + 12])
        csize, usize, nlen, elen, clen = struct.unpack("<IIHHH", raw[p + 20 : p + 34])
        (off,) = struct.unpack("<I", raw[p + 42 : p + 46])
        name = raw[p + 46 : p + 46 + nlen].decode("utf-8", "replace")
        p += 46 + nlen + elen + clen
        if method != 0 or 0xFFFFFFFF in (csize, usize, off) or raw[off : off + 4] != b"PK\x03\x04":
            return None
        ln, le = struct.unpack("<HH", raw[off + 26 : off + 30])
        start = off + 30 + ln + le
        buf = view[start : start + usize]
        if len(buf) < 10 or bytes(buf[:6]) != b"\x93NUMPY":
            return None
        if buf[6] == 1:
            (hl,), h0 = struct.unpack("<H", buf[8:10]), 10
        else:
            (hl,), h0 = struct.unpack("<I", buf[8:12]), 12
        m = _NPY_HEADER.search(bytes(buf[h0 : h0 + hl]))
        if m is None:
            return None
        dtype = np.dtype(m.group(1).decode())
        if dtype.hasobject:
            return None
        shape = tuple(int(x) for x in m.group(3).split(b",") if x.strip())
        count = int(np.prod(shape)) if shape else 1
        if h0 + hl + count * dtype.itemsize > len(buf):
            raise ValueError(f"array '{name}' is truncated")
        arr = np.frombuffer(buf, dtype=dtype, offset=h0 + hl, count=count)
        out[name[:-4] if name.endswith(".npy") else name] = arr.reshape(
            shape, order="F" if m.group(2) == b"True" else "C"
        )
    return out


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) from the file header: JPEG's SOF marker read directly (a few KB of the file),
    other formats through PIL (header only); None when unreadable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
            if head[:2] == b"\xff\xd8":
                size = _jpeg_size(fh, head)
                if size is not None:
                    return size
    except OSError:
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:
        return None


def _jpeg_size(fh, head: bytes) -> tuple[int, int] | None:
    """Walk the JPEG markers to the first SOF (reading more of ``fh`` while the headers go on)."""
    i = 2
    while True:
        while i + 9 > len(head):
            more = fh.read(max(4096, len(head)))
            if not more or len(head) > (4 << 20):
                return None
            head += more
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            h, w = struct.unpack(">HH", head[i + 5 : i + 9])
            return (w, h) if w and h else None
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        i += 2 + length


class _Drops:
    def __init__(self):
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, name: str, detail: str = "") -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES:
            ex.append(f"{name}: {detail}" if detail else name)
            log.warning("dropped %s (%s%s)", name, reason, f": {detail}" if detail else "")


def _check_annotation(arrays: dict) -> tuple[str, str] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bbox (N, 4), extended (N, 4), params (N, 413)) float64, or (reason, detail)."""
    missing = [k for k in ("bbox", "extended_bbox", "3dmm_params") if k not in arrays]
    if missing:
        return "missing_key", f"no {', '.join(missing)} (keys: {', '.join(sorted(arrays)) or 'none'})"
    bbox, ext, params = arrays["bbox"], arrays["extended_bbox"], arrays["3dmm_params"]
    if params.ndim >= 1 and params.shape[-1] != 413 and params.size:
        return "params_length", f"3dmm_params {params.shape}: vectors of {params.shape[-1]} values, expected 413"
    if params.ndim == 3 and params.shape[1] == 1:
        params = params[:, 0]
    shapes = f"bbox {bbox.shape}, extended_bbox {ext.shape}, 3dmm_params {arrays['3dmm_params'].shape}"
    if bbox.ndim != 2 or bbox.shape[1] != 4 or ext.ndim != 2 or ext.shape[1] != 4 or params.ndim != 2:
        return "wrong_shape", f"{shapes}; expected (N, 4), (N, 4), (N, 1, 413)"
    if not (len(bbox) == len(ext) == len(params)):
        return "wrong_shape", f"{shapes}: head counts disagree"
    try:
        return (bbox.astype(np.float64), ext.astype(np.float64), params.astype(np.float64))
    except (TypeError, ValueError):
        return "wrong_shape", f"{shapes}: not numeric"


def import_split(
    root: str | Path,
    split: str,
    head_model: str | Path,
    out_dir: str | Path,
    manifest_dir: str | Path,
    split_name: str,
    images: str = "reference",
    chunk: int = 2048,
    row_group_size: int = 16384,
) -> dict:
    """Import ``split_<split>`` of the release at ``root`` into ``out_dir`` (see the module doc);
    returns the stats (also written to ``out_dir/stats.json``)."""
    import time

    from tqdm import tqdm

    from ..headmodel import load_head_model
    from ..io import atomic_dir, write_json
    from ..manifest.io import TableWriter
    from .convert import SubsetDecoder, release_to_image
    from .layout import scan_split

    if images not in IMAGE_MODES:
        raise InputError(f"images must be one of {IMAGE_MODES}, got {images!r}")
    out_dir, manifest_dir = Path(out_dir), Path(manifest_dir)
    files = scan_split(root, split)
    img_dir, ann_dir = files.directory / "images", files.directory / "annotations"
    hm_path = Path(head_model)
    model = load_head_model(hm_path)
    decoder = SubsetDecoder(model)
    drops, head_drops = _Drops(), _Drops()
    stats = {
        "split": split,
        "split_name": split_name,
        "root": str(root),
        "listed": {
            "images": len(files.images),
            "annotations": len(files.annotations),
            "files_txt": len(files.removed),
            "files_txt_present": files.files_txt,
        },
        "images": 0,
        "heads": 0,
        "image_mode": images,
        "head_model": {"path": str(hm_path), "flame": hm_path.suffix == ".pkl" and model.n_vertices == 5023},
    }
    ids = files.ids()
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    # image paths relative to the manifest folder: one relpath per split, not per image
    rel_images = os.path.relpath(img_dir.resolve(), manifest_dir.resolve())
    rel_copies = os.path.relpath((out_dir / "images").resolve(), manifest_dir.resolve())
    with (
        atomic_dir(out_dir / "images") as copies,
        TableWriter(out_dir / "images.parquet", "images", row_group_size) as wi,
        TableWriter(out_dir / "heads.parquet", "heads", row_group_size) as wh,
        TableWriter(out_dir / "head_boxes.parquet", "head_boxes", row_group_size) as wb,
    ):
        for at in tqdm(range(0, len(ids), chunk), desc=f"import split_{split}", unit="chunk"):
            img_rows, head_meta, params_img = [], [], []
            for image_id in ids[at : at + chunk]:
                img_name, ann_name = files.images.get(image_id), files.annotations.get(image_id)
                if image_id in files.removed:
                    drops.add("removed_in_files_txt", img_name or ann_name or image_id)
                    continue
                if ann_name is None:
                    drops.add("image_without_annotation", f"images/{img_name}")
                    continue
                if img_name is None:
                    drops.add("annotation_without_image", f"annotations/{ann_name}")
                    continue
                ann_path = ann_dir / ann_name
                try:
                    arrays = read_npz(ann_path)
                except Exception as exc:  # zip/npy errors come in many types
                    drops.add("unreadable_npz", f"annotations/{ann_name}", f"{type(exc).__name__}: {exc}")
                    continue
                checked = _check_annotation(arrays)
                if isinstance(checked[0], str):
                    drops.add(checked[0], f"annotations/{ann_name}", checked[1])
                    continue
                bbox, ext, params = checked
                src = img_dir / img_name
                size = image_size(src)
                if size is None:
                    drops.add("unreadable_image", f"images/{img_name}")
                    continue
                ok = (
                    np.isfinite(bbox).all(1)
                    & np.isfinite(ext).all(1)
                    & (bbox[:, 2] > 0)
                    & (bbox[:, 3] > 0)
                    & (ext[:, 2] > 0)
                    & (ext[:, 3] > 0)
                )
                finite = np.isfinite(params).all(1)
                for k in np.flatnonzero(~ok):
                    head_drops.add("bad_box", f"annotations/{ann_name}#{k}")
                for k in np.flatnonzero(ok & ~finite):
                    head_drops.add("non_finite_params", f"annotations/{ann_name}#{k}")
                keep = np.flatnonzero(ok & finite)
                if not len(keep):
                    drops.add("no_heads", f"annotations/{ann_name}", "no heads" if not len(bbox) else "no valid head")
                    continue
                if images == "reference":
                    path = f"{rel_images}/{img_name}"
                else:
                    dst = copies / img_name
                    if images == "link":
                        try:
                            os.link(src, dst)
                        except OSError:
                            shutil.copyfile(src, dst)
                    else:
                        shutil.copyfile(src, dst)
                    path = f"{rel_copies}/{img_name}"
                img_rows.append((image_id, path, size[0], size[1], len(keep)))
                b, e = bbox[keep], ext[keep]
                params_img.append(release_to_image(params[keep], e))
                head_meta.append(
                    (
                        image_id,
                        keep,
                        np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1),
                        np.concatenate([e[:, :2], e[:, :2] + e[:, 2:]], 1),
                    )
                )
            if not img_rows:
                continue
            wi.write(_images_table(img_rows, split, split_name))
            p = np.concatenate(params_img).astype(np.float32)
            dec = decoder(p)
            wh.write(_heads_table(head_meta, p, dec, split_name))
            wb.write(_boxes_table(head_meta, dec, split_name))
        stats["images"], stats["heads"] = wi.rows, wh.rows
        stats["removed_in_files_txt"] = drops.counts.get("removed_in_files_txt", 0)
        stats["dropped"] = dict(sorted(drops.counts.items()))
        stats["dropped_heads"] = dict(sorted(head_drops.counts.items()))
        stats["dropped_examples"] = {k: v for k, v in sorted({**drops.examples, **head_drops.examples}.items())}
        if wi.rows == 0:
            raise InputError(
                f"{files.directory}: unusable split: none of its {len(ids)} ids could be imported "
                f"(drops: {stats['dropped']}; e.g. "
                + "; ".join(v[0] for v in stats["dropped_examples"].values() if v)[:600]
                + ")"
            )
    seconds = time.perf_counter() - start  # the log only: artefacts hold no wall-clock figures
    write_json(out_dir / "stats.json", stats)
    log.info(
        "split_%s (%s): %d images, %d heads imported; %d removed by files.txt; dropped %s; %.1f s (%.0f images/s)",
        split,
        split_name,
        stats["images"],
        stats["heads"],
        stats["removed_in_files_txt"],
        {k: v for k, v in stats["dropped"].items() if k != "removed_in_files_txt"} or "none",
        seconds,
        len(ids) / seconds if seconds > 0 else 0.0,
    )
    return stats


def _table(columns: dict) -> pa.Table:
    # Table.from_arrays: pa.table(dict) imports pandas (about a second) to ask whether it was given a DataFrame
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def _images_table(rows: list, split: str, split_name: str) -> pa.Table:
    ids, paths, widths, heights, counts = zip(*rows)
    n = len(rows)
    return _table(
        {
            "image_id": pa.array(ids, pa.string()),
            "shard": pa.array([split] * n, pa.string()),
            "split": pa.array([split_name] * n, pa.string()),
            "path": pa.array(paths, pa.string()),
            "width": pa.array(widths, pa.int32()),
            "height": pa.array(heights, pa.int32()),
            "n_heads": pa.array(counts, pa.int32()),
            "backend": pa.array([BACKEND] * n, pa.string()),
            "prompt": pa.array([""] * n, pa.string()),
            "seed": pa.array(np.zeros(n, np.int64), pa.int64()),
        }
    )


def _list_array(values: np.ndarray, n: int) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1), pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, n)


def _heads_table(meta: list, params: np.ndarray, dec: dict, split_name: str) -> pa.Table:
    ids = [image_id for image_id, keep, _, _ in meta for _ in keep]
    heads = np.concatenate([keep for _, keep, _, _ in meta]).astype(np.int32)
    boxes = np.concatenate([b for _, _, b, _ in meta])
    ext = np.concatenate([e for _, _, _, e in meta])
    n = len(ids)
    return _table(
        {
            "image_id": pa.array(ids, pa.string()),
            "head": pa.array(heads, pa.int32()),
            "split": pa.array([split_name] * n, pa.string()),
            "box": _list_array(boxes, 4),
            "extended_box": _list_array(ext, 4),
            "score": pa.array(np.full(n, np.nan, np.float32), pa.float32()),
            "flame_params": _list_array(params, 413),
            "landmarks": _list_array(dec["landmarks"], 204),
            "yaw": pa.array(dec["yaw"], pa.float32()),
            "pitch": pa.array(dec["pitch"], pa.float32()),
            "roll": pa.array(dec["roll"], pa.float32()),
            "labeller": pa.array([LABELLER] * n, pa.string()),
        }
    )


def _boxes_table(meta: list, dec: dict, split_name: str) -> pa.Table:
    ids = [image_id for image_id, keep, _, _ in meta for _ in keep]
    heads = np.concatenate([keep for _, keep, _, _ in meta]).astype(np.int32)
    n = len(ids)
    return _table(
        {
            "image_id": pa.array(ids, pa.string()),
            "head": pa.array(heads, pa.int32()),
            "split": pa.array([split_name] * n, pa.string()),
            "head_box": _list_array(dec["head_box"], 4),
            "face_box": _list_array(dec["face_box"], 4),
        }
    )
