"""Small procedural datasets in the manifest format, for tests, benchmarks and the learning check.

``make_manifest`` renders scenes with the procedural renderer (exact truth: the drawn mesh is the
decoded parameter vector) and writes ``images.parquet`` + ``heads.parquet`` exactly as the
manifest stage does (schemas ``images``/``heads``, image paths relative to the manifest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def toy_dataset(
    root: str | Path, n_train: int, n_val: int, size: int = 128, max_persons: int = 3, seed: int = 0
) -> tuple[Path, Path, Path]:
    """The project's head model and a procedural manifest under ``root``, built once and reused
    (``root/head_model.npz``, ``root/data_<n_train>_<n_val>_<size>_<seed>/``); returns
    (head model, images.parquet, heads.parquet)."""
    from ..headmodel import build_head_model, save_head_model

    root = Path(root)
    head = root / "head_model.npz"
    if not head.exists():
        save_head_model(build_head_model(seed=0), head)
    data = root / f"data_{n_train}_{n_val}_{size}_{max_persons}_{seed}"
    images, heads = data / "images.parquet", data / "heads.parquet"
    if not heads.exists():
        make_manifest(head, data, n_train, n_val, size=size, max_persons=max_persons, seed=seed)
    return head, images, heads


def make_manifest(
    head_model: str | Path,
    out_dir: str | Path,
    n_train: int,
    n_val: int,
    size: int = 128,
    max_persons: int = 3,
    seed: int = 0,
    cfg: dict | None = None,
) -> tuple[Path, Path]:
    """Render ``n_train + n_val`` images of ``size`` x ``size`` with 1..max_persons people; returns
    the paths of ``images.parquet`` and ``heads.parquet`` in ``out_dir``. Images without a visible
    head are re-drawn with the next seed."""
    from PIL import Image

    from ..headmodel import load_head_model
    from ..poses.procedural import sample_scene
    from ..render.procedural import ProceduralRenderer
    from ..schemas import from_rows, write_table

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    renderer = ProceduralRenderer(load_head_model(head_model), {"supersample": 1, **(cfg or {})})
    rng = np.random.default_rng([seed, 0x70D])
    images, heads = [], []
    attempt = 0
    while len(images) < n_train + n_val:
        attempt += 1
        n = int(rng.integers(1, max_persons + 1))
        persons = [(i, p.keypoints) for i, p in enumerate(sample_scene(n, size, size, rng))]
        result = renderer.render(persons, size, size, seed=seed * 100003 + attempt)
        if not result.heads:
            continue
        split = "train" if len(images) < n_train else "val"
        image_id = f"toy{seed:03d}_{len(images):05d}"
        Image.fromarray(result.image).save(out_dir / "images" / f"{image_id}.png")
        images.append(
            {
                "image_id": image_id,
                "shard": "00000",
                "split": split,
                "path": f"images/{image_id}.png",
                "width": size,
                "height": size,
                "n_heads": len(result.heads),
                "backend": "procedural",
                "prompt": "",
                "seed": int(attempt),
            }
        )
        for k, h in enumerate(result.heads):
            heads.append(
                {
                    "image_id": image_id,
                    "head": k,
                    "split": split,
                    "box": h.box,
                    "extended_box": h.box,
                    "score": 1.0,
                    "flame_params": h.params,
                    "landmarks": h.landmarks,
                    "yaw": h.yaw,
                    "pitch": h.pitch,
                    "roll": h.roll,
                    "labeller": "procedural",
                }
            )
    write_table(from_rows("images", images), out_dir / "images.parquet", "images")
    write_table(from_rows("heads", heads), out_dir / "heads.parquet", "heads")
    return out_dir / "images.parquet", out_dir / "heads.parquet"
