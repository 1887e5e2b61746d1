"""Overlays of a render shard's per-head truth (or any table of schema ``render_heads``) on its
images: boxes, the 68 landmarks (filled green = visible, hollow red = occluded), the mesh wireframe
(front-facing triangles, decoded from the 413 parameters with the head model) and the head's axes
(red = its left, green = up, blue = where the face looks); optionally the COCO skeleton keypoints
the heads were placed from (cyan = confident, red = not).

Used by the ``vggheads draw`` command and the ``draw_samples`` stage. The heads table defaults to
``<shard dir>.heads.parquet`` beside the image directory, where the ``render`` stage writes it.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from ..core.param_layout import SCALE_INDEX

log = logging.getLogger(__name__)

WHAT = ("box", "landmarks", "mesh", "axes")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
DEFAULT_HEAD_MODEL = Path("data/headmodel/head_model.npz")


def _group(table) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        out.setdefault(row["sample_id"], []).append(row)
    return out


def draw_heads(
    image: np.ndarray,
    rows: list[dict],
    layer=None,
    faces=None,
    what=WHAT,
    factor: int = 2,
    poses: list[dict] | None = None,
    min_confidence: float = 0.3,
) -> np.ndarray:
    """Return an upscaled copy of ``image`` with the heads of ``rows`` (schema render_heads) drawn.

    layer: a :class:`vggheads.geometry.FlameLayer` to decode the parameters (mesh and axes); without
    it only boxes and landmarks are drawn.
    """
    import cv2

    from .. import viz

    img = viz.upscale(np.ascontiguousarray(image[..., :3]), factor)
    decoded = None
    if layer is not None and rows and ({"mesh", "axes"} & set(what)):
        import torch

        from ..geometry import decode

        with torch.no_grad():
            decoded = decode(torch.tensor(np.array([r["flame_params"] for r in rows], dtype=np.float32)), layer)
    for i, row in enumerate(rows):
        vertices = decoded.vertices_image[i].numpy() if decoded is not None else None
        R = decoded.R[i].numpy() if decoded is not None else None
        scale = float(row["flame_params"][SCALE_INDEX])
        label = f"{row['head']}: yaw {row['yaw']:.0f} vis {row['visible_fraction']:.2f}"
        viz.draw_head(
            img,
            int(row["head"]),
            box=row["box"],
            landmarks=row["landmarks"],
            vertices=vertices,
            faces=faces,
            R=R,
            scale=scale,
            label=label,
            what=tuple(what),
            factor=factor,
        )
    for person in poses or []:
        kp = np.asarray(person["keypoints"], dtype=np.float64).reshape(17, 3)
        for x, y, c in kp:
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            col = (0, 255, 255) if c >= min_confidence else (255, 0, 0)
            cv2.drawMarker(
                img,
                (int(round(x * factor)), int(round(y * factor))),
                col,
                cv2.MARKER_TILTED_CROSS,
                4 + 2 * factor,
                1,
                cv2.LINE_AA,
            )
    return img


def draw(
    inputs: Path,
    out: Path,
    heads_path: Path | None = None,
    head_model: Path | None = None,
    what=WHAT,
    factor: int = 2,
    limit: int | None = None,
    poses_path: Path | None = None,
) -> list[Path]:
    """Draw overlays for an image file or a directory of images; returns the files written."""
    from PIL import Image

    from ..core.images import load_rgb
    from ..errors import InputError
    from ..io import atomic_dir, atomic_path
    from ..schemas import read_table

    inputs = Path(inputs)
    if inputs.is_dir():
        images = sorted(p for p in inputs.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        shard_dir = inputs
    elif inputs.is_file():
        images = [inputs]
        shard_dir = inputs.parent
    else:
        raise InputError(f"{inputs}: no such image or directory")
    if heads_path is None:
        heads_path = shard_dir.parent / f"{shard_dir.name}.heads.parquet"
    heads = _group(read_table(heads_path, "render_heads"))
    poses = _group(read_table(poses_path, "poses")) if poses_path else {}
    layer = faces = None
    if {"mesh", "axes"} & set(what):
        model_path = head_model or DEFAULT_HEAD_MODEL
        if Path(model_path).exists():
            from ..geometry import FlameLayer
            from ..headmodel import load_head_model

            model = load_head_model(model_path)
            layer, faces = FlameLayer(model), model.faces
        else:
            log.warning("head model %s not found: drawing without mesh and axes (pass --head-model)", model_path)
    if limit is not None:
        images = images[:limit]
    written = []
    single = inputs.is_file() and out.suffix.lower() in IMAGE_SUFFIXES
    # a shard's overlays replace its folder as a whole; a killed draw leaves nothing half-written
    folder = out / shard_dir.name if inputs.is_dir() else None
    with atomic_dir(folder) if folder is not None else contextlib.nullcontext() as tmp_folder:
        for path in images:
            sid = path.stem
            image = load_rgb(path)
            over = Image.fromarray(draw_heads(image, heads.get(sid, []), layer, faces, what, factor, poses.get(sid)))
            if tmp_folder is not None:
                over.save(tmp_folder / f"{sid}.png")
                written.append(folder / f"{sid}.png")
                continue
            target = out if single else out / f"{sid}.png"
            with atomic_path(target) as tmp:
                over.save(tmp, format="PNG")
            written.append(target)
    log.info("drew %d overlays under %s", len(written), out)
    return written
