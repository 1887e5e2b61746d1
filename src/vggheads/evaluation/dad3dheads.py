"""DAD-3DHeads: reader of its JSON ground truth and the official benchmark's four metrics.

Files (``dad3dheads.root``): either the ground-truth JSON the official ``generate_gt.py`` writes
(a list of ``{id, bbox, vertices, model_view_matrix, projection_matrix, image_height}``), or the
dataset folder ``DAD-3DHeadsDataset/<subset>/`` with ``<subset>.json`` (``item_id``, ``bbox``,
``attributes``), ``annotations/<item_id>.json`` (``vertices``, ``model_view_matrix``,
``projection_matrix``) and ``images/<item_id>.png``. GT annotations exist for the val subset; test
scores come from the authors by e-mail.

Metrics, as ``dad_3dheads_benchmark/benchmark.py`` computes them:

* NME: 68 GT landmarks = the head model's landmark embedding on the GT vertices, through
  model-view and projection, y flipped by the image height; mean L2 to the predicted 68 points
  / sqrt(w h) of the GT bbox (xywh), x 100;
* Z5: on the head model's ``head`` vertex subset, GT world vertices (model-view applied) times -1
  against the predicted vertices (z away from the camera), :func:`~.metrics.z_n_accuracy`;
* Chamfer: GT world vertices scaled to an inner-eye distance (landmarks 39-42) of 20; the
  predicted 7 landmarks (36, 39, 42, 45, 33, 48, 54) Procrustes-aligned with scale (reflection
  allowed, as the official code) to the GT's; one-sided squared distance from the GT ``face``
  vertices to the aligned prediction (kaolin's ``chamfer_distance(gt, pred, 1, 0)``);
* pose error: ``||I - R_pred R_gt^T||_F`` with ``R_gt = (diag(1, -1, -1, 1) MV)[:3, :3]``, which
  is the paper's R convention (model frame -> image frame).

The landmark embedding and subsets must be those of the model the GT vertices use (FLAME: the
user's own FLAME file); pass them as a ``HeadTopology``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from ..core.boxes import xywh_to_xyxy
from ..core.metrics import NME_KEY
from .selection import select_by_iou, with_score_fallback
from .protocol_metrics import SEVEN_LANDMARKS, chamfer_one_sided, procrustes, rotation_error_frobenius, z_n_accuracy
from ..core.images import load_rgb
from .types import BenchmarkResult, HeadPrediction, Predictor

log = logging.getLogger(__name__)

GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
INNER_EYE_DISTANCE = 20.0
PAPER_SCORE_THRESHOLD = 0.2


@dataclass
class HeadTopology:
    """What DAD-3DHeads needs from the head model of its GT meshes."""

    landmarks: Callable[[np.ndarray], np.ndarray]  # (V, 3) vertices -> (68, 3) landmarks
    head_indices: np.ndarray  # vertex ids of the Z_n subset
    face_indices: np.ndarray  # vertex ids of the Chamfer subset

    @classmethod
    def from_head_model(cls, head_model, head_subset: str = "head", face_subset: str = "face") -> "HeadTopology":
        """From a :class:`vggheads.headmodel` model: its landmark embedding and named subsets."""
        faces = np.asarray(head_model.faces, dtype=np.int64)
        corners = faces[np.asarray(head_model.lmk_faces, dtype=np.int64)]  # (68, 3)
        bary = np.asarray(head_model.lmk_bary, dtype=np.float64)  # (68, 3)
        subsets = head_model.subsets
        for name in (head_subset, face_subset):
            if name not in subsets:
                raise InputError(f"head model has no vertex subset '{name}' (has: {', '.join(sorted(subsets))})")

        def landmarks(vertices: np.ndarray) -> np.ndarray:
            # out[l, c] = sum_k bary[l, k] * vertices[corners[l, k], c]
            return np.einsum("lkc,lk->lc", np.asarray(vertices, dtype=np.float64)[corners], bary)

        return cls(landmarks, np.asarray(subsets[head_subset]), np.asarray(subsets[face_subset]))


@dataclass
class DadItem:
    id: str
    bbox: np.ndarray  # (4,) xywh
    vertices: np.ndarray  # (V, 3) model space
    model_view: np.ndarray  # (4, 4)
    projection: np.ndarray  # (4, 4)
    image_height: int | None
    image_path: Path | None = None
    attributes: dict | None = None

    def world_vertices(self) -> np.ndarray:
        homo = np.concatenate([self.vertices, np.ones((len(self.vertices), 1))], axis=1)
        return (homo @ self.model_view.T)[:, :3]

    def rotation(self) -> np.ndarray:
        """R_gt in the paper's convention."""
        return (GL_TO_CV @ self.model_view)[:3, :3]

    def landmarks_2d(self, topology: HeadTopology, height: int | None = None) -> np.ndarray:
        height = height if height is not None else self.image_height
        if height is None:
            raise InputError(f"DAD-3DHeads item {self.id}: image height unknown (no image_height and no image file)")
        lm = topology.landmarks(self.vertices)
        homo = np.concatenate([lm, np.ones((len(lm), 1))], axis=1)
        clip = homo @ self.model_view.T @ self.projection.T
        xy = clip[:, :2] / clip[:, 3:4]
        return np.stack([xy[:, 0], height - xy[:, 1]], axis=1)


def _item(entry: dict, source: str, image_path: Path | None = None) -> DadItem:
    for key in ("bbox", "vertices", "model_view_matrix", "projection_matrix"):
        if key not in entry:
            raise InputError(
                f"{source}: field '{key}' missing (DAD-3DHeads ground truth has bbox, vertices, "
                f"model_view_matrix, projection_matrix)"
            )
    vertices = np.asarray(entry["vertices"], dtype=np.float64).reshape(-1, 3)
    mv = np.asarray(entry["model_view_matrix"], dtype=np.float64)
    proj = np.asarray(entry["projection_matrix"], dtype=np.float64)
    for key, arr in (("model_view_matrix", mv), ("projection_matrix", proj)):
        if arr.shape != (4, 4):
            raise InputError(f"{source}: field '{key}' has shape {arr.shape}, expected (4, 4)")
    bbox = np.asarray(entry["bbox"], dtype=np.float64).reshape(-1)
    if bbox.size != 4:
        raise InputError(f"{source}: field 'bbox' has {bbox.size} values, expected 4 (x, y, w, h)")
    item_id = str(entry.get("id", entry.get("item_id", Path(source).stem)))
    return DadItem(item_id, bbox, vertices, mv, proj, entry.get("image_height"), image_path, entry.get("attributes"))


def _read_json(path: Path):
    if not path.exists():
        raise InputError(f"{path}: DAD-3DHeads file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def read_dad3dheads(root: str | Path, subset: str = "val") -> list[DadItem]:
    """Items from a ground-truth JSON file or from the dataset folder (``root`` or ``root/<subset>``)."""
    root = Path(root)
    if root.is_file():
        data = _read_json(root)
        if not isinstance(data, list):
            raise InputError(f"{root}: expected a list of annotations (the official generate_gt.py output)")
        images = root.parent / "images"
        return [
            _item(
                e,
                f"{root} entry {i}",
                (images / f"{e.get('id')}.png") if (images / f"{e.get('id')}.png").exists() else None,
            )
            for i, e in enumerate(data)
        ]
    folder = root / subset if (root / subset / f"{subset}.json").exists() else root
    index_path = folder / f"{subset}.json"
    index = _read_json(index_path)
    items = []
    for n, el in enumerate(index):
        if "item_id" not in el:
            raise InputError(f"{index_path}: entry {n} has no 'item_id'")
        ann_path = folder / "annotations" / f"{el['item_id']}.json"
        ann = _read_json(ann_path)
        entry = {
            **ann,
            "id": el["item_id"],
            "bbox": el.get("bbox", ann.get("bbox")),
            "attributes": el.get("attributes"),
        }
        if entry["bbox"] is None:
            raise InputError(f"{index_path}: entry {n} ({el['item_id']}) has no 'bbox'")
        image = folder / "images" / f"{el['item_id']}.png"
        items.append(_item(entry, str(ann_path), image if image.exists() else None))
    return items


def score_item(item: DadItem, head: HeadPrediction, topology: HeadTopology, height: int | None = None) -> dict:
    """The four metrics for one GT head and its prediction (a metric the prediction cannot feed is left out)."""
    out = {}
    if head.landmarks is not None:
        gt2d = item.landmarks_2d(topology, height)
        out[NME_KEY] = float(
            np.mean(np.linalg.norm(gt2d - head.landmarks, axis=1)) / np.sqrt(item.bbox[2] * item.bbox[3]) * 100.0
        )
    R = head.rotation_matrix()
    if R is not None:
        out["pose_error"] = rotation_error_frobenius(R, item.rotation())
    if head.vertices is not None:
        pred_v = np.asarray(head.vertices, dtype=np.float64)
        world = item.world_vertices()
        if len(pred_v) == len(world):
            out["z5"] = z_n_accuracy(pred_v[topology.head_indices], -world[topology.head_indices], n=5)
        pred_lmk = head.landmarks_3d if head.landmarks_3d is not None else topology.landmarks(pred_v)
        out["chamfer"] = chamfer_distance(world, pred_v, pred_lmk[list(SEVEN_LANDMARKS)], topology)
    return out


def chamfer_distance(
    gt_world: np.ndarray, pred_vertices: np.ndarray, pred_seven: np.ndarray, topology: HeadTopology
) -> float:
    """The official Chamfer: scale GT, 7-landmark Procrustes of the prediction, one-sided squared distance."""
    lm = topology.landmarks(gt_world)
    scale = INNER_EYE_DISTANCE / np.linalg.norm(lm[39] - lm[42])
    gt = gt_world * scale
    gt_seven = topology.landmarks(gt)[list(SEVEN_LANDMARKS)]
    _, _, (s, T, c) = procrustes(gt_seven, pred_seven, scaling=True, reflection="best")
    aligned = s * np.asarray(pred_vertices, dtype=np.float64) @ T + c
    return chamfer_one_sided(gt[topology.face_indices], aligned, squared=True)


def evaluate_dad3dheads(
    items: list[DadItem],
    predictor: Predictor,
    topology: HeadTopology,
    system: str = "model",
    min_score: float | None = PAPER_SCORE_THRESHOLD,
    max_images: int | None = None,
    progress: bool = True,
) -> BenchmarkResult:
    """Run ``predictor`` on the items with an image; score the head of highest IoU with the GT bbox."""
    from tqdm import tqdm

    present = [it for it in items if it.image_path is not None][:max_images]
    if not present:
        raise InputError(
            "DAD-3DHeads evaluation: no item image found (expected images/<id>.png beside the annotations)"
        )
    sums: dict[str, list[float]] = {}
    records = []
    missed = 0
    for it in tqdm(present, desc="dad3dheads", disable=not progress):
        image = load_rgb(it.image_path)
        heads = with_score_fallback(predictor(image), min_score, None)
        head = select_by_iou(heads, xywh_to_xyxy(it.bbox)[0], use_face_box=False)
        if head is None:
            missed += 1
            records.append({"id": it.id, "detected": False})
            continue
        scores = score_item(it, head, topology, height=image.shape[0])
        for k, v in scores.items():
            sums.setdefault(k, []).append(v)
        records.append({"id": it.id, "detected": True, **scores})
    result = BenchmarkResult("dad3dheads", system, records=records)
    result.metrics.update(images=len(present), images_missing=len(items) - len(present), missed=missed)
    for k, v in sums.items():
        result.metrics[k] = float(np.mean(v))
    result.protocol = {
        "metrics": "official dad_3dheads_benchmark: NME x100 / sqrt(bbox w h); Z5 on the head subset; "
        "Chamfer (squared, one-sided GT face -> pred) after 7-landmark Procrustes with scale, "
        "inner-eye distance 20; pose error ||I - R_pred R_gt^T||_F",
        "selection": f"score >= {min_score}, max IoU with the GT bbox",
        "missed": "images without a detection are counted, not averaged",
        "images": "all items" if len(present) == len(items) else f"{len(present)} of {len(items)} items (subset)",
    }
    return result
