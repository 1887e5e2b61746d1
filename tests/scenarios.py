"""The scenario matrix: tests/configs/<scenario>.yaml, and the stand-ins some scenarios need.

A scenario file is a small manual of one way to run the pipeline:

```yaml
about: what the scenario exercises, and why it stops where it does
reaches: [data/poses/00000.parquet, ...]    # the furthest targets it can meaningfully reach ([all]: every one)
then_stops:                                  # optional: what a run to the end does instead
  target: data/manifest/images.parquet
  says: [a phrase of the message, ...]
expect:                                      # optional: {output JSON: {dotted key: value}} after the run
  data/poses/00000.stats.json: {backend: ultralytics}
params: {...}                                # merged over params.yaml + tests/data/tiny.yaml
```

Strings in ``params`` may name ``{standins}`` (the folder :func:`build_standins` fills) and
``{tiny_run}`` (the session's finished run of the default scenario). Adding a scenario is adding
its file: tests/test_scenarios.py dry-runs every file in the fast tests and runs each for real.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import yaml

CONFIGS = Path(__file__).resolve().parent / "configs"


def names() -> list[str]:
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def load(name: str) -> dict:
    doc = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    unknown = set(doc) - {"about", "reaches", "then_stops", "expect", "params"}
    assert not unknown and doc.get("about") and doc.get("reaches"), f"{name}.yaml: bad scenario file ({unknown})"
    doc.setdefault("params", {})
    return doc


def resolve(node, **paths):
    """``node`` with ``{standins}``/``{tiny_run}`` in its strings replaced by those paths."""
    if isinstance(node, dict):
        return {k: resolve(v, **paths) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, **paths) for v in node]
    if isinstance(node, str):
        for key, value in paths.items():
            node = node.replace("{" + key + "}", str(value))
    return node


def placeholder_files(node) -> list[str]:
    """Every ``{standins}/...`` path the params name (a dry run needs them to exist, not to be real)."""
    if isinstance(node, dict):
        return [p for v in node.values() for p in placeholder_files(v)]
    if isinstance(node, list):
        return [p for v in node for p in placeholder_files(v)]
    return [node] if isinstance(node, str) and node.startswith("{standins}/") else []


def dotted(doc: dict, key: str):
    for part in key.split("."):
        doc = doc[part]
    return doc


def check_expectations(project: Path, expect: dict) -> None:
    for rel, wanted in (expect or {}).items():
        doc = json.loads((project / rel).read_text())
        for key, value in wanted.items():
            assert dotted(doc, key) == value, f"{rel}: {key} is {dotted(doc, key)!r}, expected {value!r}"


# ---------------------------------------------------------------- stand-ins for real weights

# Writes generic_model.pkl as FLAME's own file holds it: chumpy Ch objects (a module faked here,
# so the reader must cope without chumpy) and a scipy sparse J_regressor, pickle protocol 2.
_WRITE_FLAME = r"""
import pickle, sys, types
import numpy as np, scipy.sparse

chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
class Ch:
    def __init__(self, x):
        self.x = np.asarray(x)
    def __getstate__(self):
        return dict(self.__dict__)
Ch.__module__ = "chumpy.ch"
ch.Ch, chumpy.ch = Ch, ch
sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
src, out = sys.argv[1], sys.argv[2]
a = dict(np.load(src))
model = {"v_template": Ch(a["v_template"]), "shapedirs": Ch(a["shapedirs"]), "posedirs": Ch(a["posedirs"]),
         "J_regressor": scipy.sparse.csc_matrix(a["J_regressor"]), "weights": Ch(a["weights"]),
         "kintree_table": a["kintree_table"], "f": a["f"], "J": Ch(a["J_regressor"] @ a["v_template"]),
         "bs_style": "lbs", "bs_type": "lrotmin"}
with open(out, "wb") as fh:
    pickle.dump(model, fh, protocol=2)
"""


def write_flame_standin(head_model_npz: Path, folder: Path) -> Path:
    """The project's head model as a real FLAME release lays it out: ``generic_model.pkl`` (chumpy
    pickle), the static/dynamic landmark embedding, ``FLAME_masks.pkl`` and ``face.npy``/``head_indices.npy``."""
    import numpy as np

    from vggheads.headmodel import load_head_model

    folder.mkdir(parents=True, exist_ok=True)
    model = load_head_model(head_model_npz)
    arrays = {
        "v_template": model.v_template,
        "shapedirs": model.shapedirs,
        "posedirs": model.posedirs,
        "J_regressor": model.J_regressor,
        "weights": model.weights,
        "f": model.faces.astype(np.uint32),
        "kintree_table": np.where(model.kintree_table < 0, 2**32 - 1, model.kintree_table).astype(np.uint32),
    }
    np.savez(folder / "arrays.npz", **arrays)
    subprocess.run(
        [sys.executable, "-c", _WRITE_FLAME, str(folder / "arrays.npz"), str(folder / "generic_model.pkl")], check=True
    )
    (folder / "arrays.npz").unlink()
    with open(folder / "flame_static_embedding.pkl", "wb") as fh:
        pickle.dump(
            {"lmk_face_idx": model.lmk_faces[17:].astype(np.uint32), "lmk_b_coords": model.lmk_bary[17:]},
            fh,
            protocol=2,
        )
    np.save(
        folder / "flame_dynamic_embedding.npy",
        {
            "lmk_face_idx": np.tile(model.lmk_faces[:17], (79, 1)),
            "lmk_b_coords": np.tile(model.lmk_bary[:17], (79, 1, 1)),
        },
        allow_pickle=True,
    )
    with open(folder / "FLAME_masks.pkl", "wb") as fh:
        pickle.dump({**model.regions, "face": model.subsets["face"]}, fh, protocol=2)
    np.save(folder / "face.npy", model.subsets["face"])
    np.save(folder / "head_indices.npy", model.subsets["head"])
    return folder / "generic_model.pkl"


def write_dad3dnet_standin(path: Path) -> Path:
    """A TorchScript file with the official ``dad_3dheads.trcd`` contract ((B, 3, 256, 256) -> a dict with
    ``OUTPUT_3DMM_PARAMS`` (B, 413)): an upright, frontal head filling the middle of every crop."""
    import torch

    class Dad(torch.nn.Module):
        def forward(self, x):
            p = torch.zeros(x.shape[0], 413)
            p[:, 403], p[:, 407] = 1.0, 1.0  # 6D rotation: identity
            p[:, 412] = 6.0  # DAD's (s + 1) scale: a ~0.1 m head spans most of the crop
            return {"OUTPUT_3DMM_PARAMS": p + 0.0 * x.mean()}

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.trace(Dad(), torch.zeros(1, 3, 256, 256), strict=False).save(str(path))
    return path


def write_pose_model_standin(path: Path) -> Path:
    """A YOLO-pose checkpoint built from ultralytics' ``yolov8n-pose.yaml`` (random weights)."""
    from vggheads.offline import import_ultralytics

    import_ultralytics()
    from ultralytics import YOLO

    path.parent.mkdir(parents=True, exist_ok=True)
    YOLO("yolov8n-pose.yaml").save(str(path))
    return path


def write_image_folder(caption_source: Path, folder: Path) -> Path:
    """img2dataset's folder layout (``<key>.jpg`` + ``<key>.json`` with its ``url``) for every row of a
    LAION metadata parquet: small synthetic photos, so any sampled row finds its image."""
    import numpy as np
    import pyarrow.parquet as pq
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    table = pq.read_table(caption_source)
    urls = table.column("URL" if "URL" in table.column_names else "url").to_pylist()
    rng = np.random.default_rng(0)
    for i, url in enumerate(urls):
        key = f"{i:09d}"
        pixels = (rng.random((96, 128, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{key}.jpg", quality=90)
        (folder / f"{key}.json").write_text(json.dumps({"url": url, "key": key, "status": "success"}))
    return folder


def build_standins(folder: Path, head_model_npz: Path, caption_source: Path, trained_model: Path | None) -> Path:
    """Every stand-in the scenarios name, under ``folder``; ``trained_model`` is a finished run's
    ``data/model`` (copied as a previous round's model, as labels.model.weights wants)."""
    import shutil

    write_flame_standin(head_model_npz, folder / "flame")
    write_dad3dnet_standin(folder / "dad_3dheads.trcd")
    write_pose_model_standin(folder / "yolov8n-pose.pt")
    write_image_folder(caption_source, folder / "laion_images")
    if trained_model is not None:
        shutil.copytree(trained_model, folder / "round1", dirs_exist_ok=True)
        from vggheads.release.standin import build_standin

        build_standin(trained_model, folder / "vgg_heads_l.trcd")  # the released model's contract (docs/release.md)
    return folder
