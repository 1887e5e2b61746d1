"""Agreement of a head-mesh render with the scene it was drawn around (a fifth filter rule).

With ``render.sdxl.conditioning: head-mesh`` / ``pose+head-mesh`` every head's box, 3DMM
parameters and landmarks are known before SDXL paints the image: they are the procedural scene's.
Diffusion does not always follow its condition (a head not painted, one painted elsewhere, an
extra person), so the labels are only exact where the image shows what the scene says. Measured
per image, and per scene head:

- **boxes**: the head detector's boxes against the scene's, matched one to one (Hungarian,
  IoU >= ``min_iou``); recall (scene heads found), precision (detections that are scene heads),
  F1 = 2 matched / (scene heads + detections) (1 when there is nothing on either side), and the
  mean IoU over the scene heads (0 for a head not found);
- **landmarks**, where the labeller reads the image (``labels.labeller`` other than ``truth``):
  its 68 landmarks against the scene's, on the heads it labelled that match a scene head; NME in
  percent of sqrt(w h) of the scene box, as the label-quality figures (also over the landmarks the
  scene marks visible).

The rule (``filter.agreement``): an image is dropped, reason ``agreement``, when its F1 is below
``min_f1`` or its mean landmark NME is above ``max_nme_pct``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

F1_BINS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0, 1.0 + 1e-9]  # last bin: exactly 1
NME_BINS = [0.0, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, float("inf")]


@dataclass
class SceneHeads:
    """The scene truth of one image (rows of ``render_heads``)."""

    heads: np.ndarray  # (G,) int: the head (person) ids
    boxes: np.ndarray  # (G, 4) xyxy
    landmarks: np.ndarray  # (G, 68, 3) x, y, visibility


@dataclass
class Agreement:
    scene_heads: int
    detected: int
    matched: int
    recall: float
    precision: float
    f1: float
    mean_iou: float  # NaN without scene heads
    nme: float  # NaN without labeller landmarks on a found head
    heads: list[dict] = field(default_factory=list)  # per scene head: rows of the agreement_heads table

    def row(self, sample_id: str, agree: bool) -> dict:
        return {
            "sample_id": sample_id,
            "scene_heads": self.scene_heads,
            "detected": self.detected,
            "matched": self.matched,
            "recall": self.recall,
            "precision": self.precision,
            "f1": self.f1,
            "mean_iou": self.mean_iou,
            "nme": self.nme,
            "agree": bool(agree),
        }


def scene_by_sample(table) -> dict[str, SceneHeads]:
    """Group a ``render_heads`` table (pyarrow) by sample id, in row order."""
    cols = table.to_pydict() if table.num_rows else {}
    grouped: dict[str, list[int]] = {}
    for i, sid in enumerate(cols.get("sample_id", [])):
        grouped.setdefault(sid, []).append(i)
    return {
        sid: SceneHeads(
            heads=np.asarray([cols["head"][i] for i in idx], dtype=np.int64),
            boxes=np.asarray([cols["box"][i] for i in idx], dtype=np.float64).reshape(-1, 4),
            landmarks=np.asarray([cols["landmarks"][i] for i in idx], dtype=np.float64).reshape(-1, 68, 3),
        )
        for sid, idx in grouped.items()
    }


def measure(
    scene: SceneHeads | None, det_boxes, label_boxes=None, label_landmarks=None, min_iou: float = 0.5
) -> Agreement:
    """Agreement of one image. det_boxes (D, 4) xyxy; label_boxes (L, 4) and label_landmarks
    (L, 68, >=2) of a labeller that reads the image (None: no landmark agreement)."""
    from ..core.boxes import iou_matrix
    from ..core.metrics import box_norm, match_hungarian

    if scene is None:
        scene = SceneHeads(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros((0, 68, 3)))
    det = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    n, d = len(scene.boxes), len(det)
    pairs = match_hungarian(scene.boxes, det, min_iou)
    m = len(pairs)
    matched = {g: (p, iou) for g, p, iou in pairs}
    best = iou_matrix(scene.boxes, det).max(axis=1) if n and d else np.zeros(n)
    lm_nme = np.full(n, np.nan)
    lm_nme_vis = np.full(n, np.nan)
    if label_boxes is not None and label_landmarks is not None and n:
        lb = np.asarray(label_boxes, dtype=np.float64).reshape(-1, 4)
        ll = np.asarray(label_landmarks, dtype=np.float64).reshape(len(lb), 68, -1)[..., :2]
        for g, lab, _ in match_hungarian(scene.boxes, lb, min_iou):
            norm = box_norm(scene.boxes[g])
            if norm <= 0 or not np.isfinite(ll[lab]).all():
                continue
            dist = np.linalg.norm(ll[lab] - scene.landmarks[g, :, :2], axis=1)
            lm_nme[g] = dist.mean() / norm * 100.0
            vis = scene.landmarks[g, :, 2] > 0.5
            if vis.any():
                lm_nme_vis[g] = dist[vis].mean() / norm * 100.0
    heads = []
    for g in range(n):
        p, iou = matched.get(g, (-1, float(best[g])))
        heads.append(
            {
                "head": int(scene.heads[g]),
                "box": scene.boxes[g].astype(np.float32),
                "detected_box": (det[p] if p >= 0 else np.full(4, np.nan)).astype(np.float32),
                "matched": p >= 0,
                "iou": float(iou),
                "nme": float(lm_nme[g]),
                "nme_visible": float(lm_nme_vis[g]),
            }
        )
    ious = [h["iou"] if h["matched"] else 0.0 for h in heads]
    found = lm_nme[np.isfinite(lm_nme)]
    return Agreement(
        scene_heads=n,
        detected=d,
        matched=m,
        recall=m / n if n else 1.0,
        precision=m / d if d else 1.0,
        f1=2.0 * m / (n + d) if n + d else 1.0,
        mean_iou=float(np.mean(ious)) if n else float("nan"),
        nme=float(found.mean()) if len(found) else float("nan"),
        heads=heads,
    )


def disagrees(a: Agreement, min_f1: float, max_nme_pct: float | None) -> bool:
    """The rule: F1 below ``min_f1``, or (when set and measured) landmark NME above ``max_nme_pct`` (percent)."""
    if a.f1 < min_f1:
        return True
    return max_nme_pct is not None and np.isfinite(a.nme) and a.nme > max_nme_pct


def summary(rows: list[dict], head_rows: list[dict]) -> dict:
    """Per-shard figures for the stats JSON: means and histograms of the per-image values."""

    def mean(key, src=rows):
        v = np.asarray([r[key] for r in src], dtype=np.float64)
        v = v[np.isfinite(v)]
        return round(float(v.mean()), 4) if len(v) else None

    f1 = np.asarray([r["f1"] for r in rows], dtype=np.float64)
    nme = np.asarray([r["nme"] for r in rows], dtype=np.float64)
    return {
        "images": len(rows),
        "scene_heads": int(sum(r["scene_heads"] for r in rows)),
        "detected": int(sum(r["detected"] for r in rows)),
        "matched": int(sum(r["matched"] for r in rows)),
        "mean_f1": mean("f1"),
        "mean_recall": mean("recall"),
        "mean_precision": mean("precision"),
        "mean_iou": mean("mean_iou"),
        "mean_nme_pct": mean("nme"),
        "heads_nme_pct": mean("nme", head_rows),
        "disagreeing": int(sum(not r["agree"] for r in rows)),
        "f1_histogram": {"bins": F1_BINS[:-1], "counts": np.histogram(f1, F1_BINS)[0].tolist()},
        "nme_histogram": {"bins": NME_BINS[:-1], "counts": np.histogram(nme[np.isfinite(nme)], NME_BINS)[0].tolist()},
    }


def head_mesh_render(params: dict) -> bool:
    """Whether the shard's images were painted around a procedural scene (sdxl/tiny-sdxl, head-mesh modes)."""
    from ..render.sdxl_pipeline import HEAD_MESH_MODES

    render = params.get("render") or {}
    return render.get("backend") in ("sdxl", "tiny-sdxl") and (
        (render.get("sdxl") or {}).get("conditioning") in HEAD_MESH_MODES
    )
