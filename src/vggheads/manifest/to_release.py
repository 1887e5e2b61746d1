"""Export the manifests to the paper's release layout, for users of the original VGGHeads data.

::

    OUT/split_000NN/images/<image_id>.<png|jpg>
    OUT/split_000NN/annotations/<image_id>.npz    bbox (N, 4) xywh float32, extended_bbox (N, 4) xywh int32,
                                                   3dmm_params (N, 1, 413) float32
    OUT/split_000NN/files.txt                      empty: only kept images are exported

``split_000NN`` is shard NN (the release's val = split_00000-00001, as ``manifest.val_shards``).

``3dmm_params`` are in the release's convention (DAD-3DNet's, readjusted to the crop):
``v = ((s + 1) R v + [tx, ty, 0] + 1) / 2 * 256 + extended_bbox[:2]`` gives image pixels, the
inverse of what ``label_3dmm`` stores (``v_img = s R v + t``), relative to the stored (integer)
``extended_bbox``. Only kept images are exported, so each ``files.txt`` is empty. ``--out
DIR/large`` gives the release's own tree; ``dataset.source: release`` imports it back
(:mod:`vggheads.release.importer`), reproducing the boxes and parameters.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..core.param_layout import N_PARAMS

log = logging.getLogger(__name__)


def annotation_arrays(boxes: np.ndarray, extended: np.ndarray, params: np.ndarray) -> dict:
    """The npz arrays of one image from xyxy boxes, xyxy extended boxes and image-pixel parameters."""
    from ..labelling.dad3dnet import image_to_release

    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ext = np.asarray(extended, dtype=np.float64).reshape(-1, 4)
    xywh = boxes.copy()
    xywh[:, 2:] -= xywh[:, :2]
    ext_xywh = np.rint(ext).astype(np.int32)  # the release stores integer crops
    ext_xywh[:, 2:] -= ext_xywh[:, :2]
    # the parameters are relative to the crop as stored (rounded), so that the release's own
    # decoding (and `dataset.source: release`) puts the head exactly where it was
    stored = np.concatenate([ext_xywh[:, :2], ext_xywh[:, :2] + ext_xywh[:, 2:]], 1).astype(np.float64)
    return {
        "bbox": xywh.astype(np.float32),
        "extended_bbox": ext_xywh,
        "3dmm_params": image_to_release(params, stored)[:, None, :].astype(np.float32),
    }


def _write_npz(path: Path, arrays: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def _copy_image(src: Path, dst_stem: Path, image_format: str, link: bool) -> Path:
    if image_format == "jpg" and src.suffix.lower() not in (".jpg", ".jpeg"):
        from PIL import Image

        dst = dst_stem.with_suffix(".jpg")
        with Image.open(src) as im:
            im.convert("RGB").save(dst, format="JPEG", quality=95)
        return dst
    dst = dst_stem.with_suffix(src.suffix.lower())
    if link:
        try:
            os.link(src, dst)
            return dst
        except OSError:
            pass
    shutil.copyfile(src, dst)
    return dst


def export_release(
    manifest_dir: Path, out: Path, image_format: str = "same", link: bool = False, batch_size: int = 8192
) -> dict:
    """Write the release layout of ``manifest_dir`` into ``out`` (atomically, as one directory)."""
    from tqdm import tqdm

    from ..errors import InputError
    from ..io import atomic_dir
    from .io import iter_batches, open_table

    manifest_dir = Path(manifest_dir)
    images = open_table(manifest_dir / "images.parquet", "images").read(columns=["image_id", "shard", "path"])
    where = {i: (s, p) for i, s, p in zip(*(images[c].to_pylist() for c in ("image_id", "shard", "path")))}
    stats = {"images": 0, "heads": 0, "splits": set()}
    with atomic_dir(out) as tmp:
        current, rows = None, []

        def flush():
            if current is None:
                return
            shard, rel = where[current]
            split_dir = tmp / f"split_{shard}"
            if not split_dir.exists():
                (split_dir / "images").mkdir(parents=True)
                (split_dir / "annotations").mkdir(parents=True)
                (split_dir / "files.txt").write_text("")  # the release's list of removed images
            src = manifest_dir / rel
            if not src.exists():
                raise InputError(f"{manifest_dir / 'images.parquet'}: image '{rel}' of {current} not found")
            _copy_image(src, split_dir / "images" / current, image_format, link)
            arrays = annotation_arrays(
                np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
            )
            _write_npz(split_dir / "annotations" / f"{current}.npz", arrays)
            stats["images"] += 1
            stats["heads"] += len(rows)
            stats["splits"].add(shard)

        for batch in tqdm(
            iter_batches(
                manifest_dir / "heads.parquet", "heads", ["image_id", "box", "extended_box", "flame_params"], batch_size
            ),
            desc="export",
            unit="batch",
        ):
            ids = batch.column("image_id").to_pylist()
            box = batch.column("box").flatten().to_numpy().reshape(-1, 4)
            ext = batch.column("extended_box").flatten().to_numpy().reshape(-1, 4)
            par = batch.column("flame_params").flatten().to_numpy().reshape(-1, N_PARAMS)
            for k, image_id in enumerate(ids):
                if image_id not in where:
                    raise InputError(
                        f"{manifest_dir / 'heads.parquet'}: head of image '{image_id}', "
                        "which images.parquet does not list"
                    )
                if image_id != current:
                    flush()
                    current, rows = image_id, []
                rows.append((box[k], ext[k], par[k]))
        flush()
    stats["splits"] = sorted(stats["splits"])
    log.info(
        "exported %d images, %d heads in %d splits to %s", stats["images"], stats["heads"], len(stats["splits"]), out
    )
    return stats
