"""Label quality against the exact truth of procedural renders.

The paper never measures its pseudo-labels; on procedural renders every head's parameters are
known, so the whole chain (detector + labeller) is scored here:

- detection: recall and precision of the detections at IoU >= 0.5 (one-to-one Hungarian matching);
- labels: each labelled head is matched to a truth head the same way; per matched head the
  landmark NME (mean L2 over the 68 landmarks / sqrt(w h) of the truth head box, percent; also over
  the landmarks the truth marks visible), the absolute yaw, pitch and roll errors (wrapped, degrees)
  and the geodesic rotation error (degrees); ``label_recall`` = labelled and matched / truth heads.

Shards are scored separately and merged: :class:`QualityAccumulator` keeps sums, counts and
fixed histograms, so the merged figures equal those of one pass over every shard.
"""

from __future__ import annotations

import numpy as np

from ..core.metrics import GEODESIC_KEY, NME_KEY

NME_BINS = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, float("inf")]
POSE_BINS = [0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 45.0, 90.0, 180.0]
_SUMS = ("nme_pct", "nme_visible_pct", "yaw_deg", "pitch_deg", "roll_deg", "geodesic_deg")  # units in the names


def _wrap(a):
    return np.abs((np.asarray(a, dtype=np.float64) + 180.0) % 360.0 - 180.0)


def _rotations(params: np.ndarray) -> np.ndarray:
    import torch

    from ..geometry import rot6d_to_matrix

    return rot6d_to_matrix(torch.as_tensor(np.asarray(params, dtype=np.float64)[:, 403:409])).numpy()


def geodesic_degrees(R1: np.ndarray, R2: np.ndarray) -> np.ndarray:
    """Angle of R1 R2^T, (N, 3, 3) each -> (N,) degrees."""
    cos = (np.einsum("nij,nij->n", R1, R2) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


class QualityAccumulator:
    """Sums for detection and label quality over images; ``state()`` is JSON and merges by addition."""

    def __init__(self, iou_threshold: float = 0.5):
        self.iou = float(iou_threshold)
        self.counts = {
            "images": 0,
            "truth_heads": 0,
            "detections": 0,
            "detections_matched": 0,
            "labels": 0,
            "labels_matched": 0,
            "nme_failures": 0,
        }
        self.sums = {k: 0.0 for k in _SUMS}
        self.n_visible = 0
        self.nme_hist = np.zeros(len(NME_BINS) - 1, dtype=np.int64)
        self.geodesic_hist = np.zeros(len(POSE_BINS) - 1, dtype=np.int64)

    def add(self, truth, det_boxes, label_boxes, label_params, label_landmarks, label_angles) -> None:
        """One image. truth: a ``TruthHeads`` (or None = no head); det_boxes (D, 4); label_boxes (L, 4),
        label_params (L, 413), label_landmarks (L, 68, >=2), label_angles (L, 3) yaw/pitch/roll."""
        from ..core.metrics import FAILURE_NME, box_norm, match_hungarian

        t_boxes = np.zeros((0, 4)) if truth is None else truth.boxes
        det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
        label_boxes = np.asarray(label_boxes, dtype=np.float64).reshape(-1, 4)
        self.counts["images"] += 1
        self.counts["truth_heads"] += len(t_boxes)
        self.counts["detections"] += len(det_boxes)
        self.counts["detections_matched"] += len(match_hungarian(t_boxes, det_boxes, self.iou))
        self.counts["labels"] += len(label_boxes)
        pairs = match_hungarian(t_boxes, label_boxes, self.iou)
        if not pairs:
            return
        g = np.array([p[0] for p in pairs])
        lab = np.array([p[1] for p in pairs])
        self.counts["labels_matched"] += len(pairs)
        gt_lm = truth.landmarks[g].astype(np.float64)
        pred_lm = np.asarray(label_landmarks, dtype=np.float64)[lab][..., :2]
        norms = np.array([box_norm(truth.boxes[i]) for i in g])
        dist = np.linalg.norm(pred_lm - gt_lm[..., :2], axis=-1)  # (M, 68)
        nme = dist.mean(axis=1) / norms * 100.0
        vis = gt_lm[..., 2] > 0.5
        for d, v, n in zip(dist, vis, norms):
            if v.any():
                self.sums["nme_visible_pct"] += float(d[v].mean() / n * 100.0)
                self.n_visible += 1
        self.sums["nme_pct"] += float(nme.sum())
        self.counts["nme_failures"] += int((nme > FAILURE_NME).sum())
        self.nme_hist += np.histogram(nme, NME_BINS)[0]
        err = _wrap(np.asarray(label_angles, dtype=np.float64)[lab] - truth.angles[g])
        for k, name in enumerate(("yaw_deg", "pitch_deg", "roll_deg")):
            self.sums[name] += float(err[:, k].sum())
        geo = geodesic_degrees(_rotations(np.asarray(label_params)[lab]), _rotations(truth.params[g]))
        self.sums["geodesic_deg"] += float(geo.sum())
        self.geodesic_hist += np.histogram(geo, POSE_BINS)[0]

    def state(self) -> dict:
        return {
            "iou_threshold": self.iou,
            "counts": dict(self.counts),
            "sums": dict(self.sums),
            "n_visible": self.n_visible,
            "nme_hist": self.nme_hist.tolist(),
            "geodesic_hist": self.geodesic_hist.tolist(),
        }

    @classmethod
    def merge(cls, states: list[dict]) -> "QualityAccumulator":
        acc = cls(states[0]["iou_threshold"] if states else 0.5)
        for st in states:
            for k, v in st["counts"].items():
                acc.counts[k] = acc.counts.get(k, 0) + int(v)
            for k, v in st["sums"].items():
                acc.sums[k] = acc.sums.get(k, 0.0) + float(v)
            acc.n_visible += int(st["n_visible"])
            acc.nme_hist += np.asarray(st["nme_hist"], dtype=np.int64)
            acc.geodesic_hist += np.asarray(st["geodesic_hist"], dtype=np.int64)
        return acc

    def metrics(self) -> dict:
        """Figures: detection recall/precision, label recall, NME, failure rate, pose errors."""
        c = self.counts
        ratio = lambda a, b: (a / b) if b else None
        m = c["labels_matched"]
        out = {
            "images": c["images"],
            "truth_heads": c["truth_heads"],
            "detections": c["detections"],
            "labels": c["labels"],
            "labels_matched": m,
            "detection_recall": ratio(c["detections_matched"], c["truth_heads"]),
            "detection_precision": ratio(c["detections_matched"], c["detections"]),
            "label_recall": ratio(m, c["truth_heads"]),
            "label_precision": ratio(m, c["labels"]),
            NME_KEY: ratio(self.sums["nme_pct"], m),
            "nme_visible_pct": ratio(self.sums["nme_visible_pct"], self.n_visible),
            "failure_rate": ratio(c["nme_failures"], m),
            "yaw_mae_deg": ratio(self.sums["yaw_deg"], m),
            "pitch_mae_deg": ratio(self.sums["pitch_deg"], m),
            "roll_mae_deg": ratio(self.sums["roll_deg"], m),
            GEODESIC_KEY: ratio(self.sums["geodesic_deg"], m),
        }
        if out["yaw_mae_deg"] is not None:
            out["pose_mae_deg"] = (out["yaw_mae_deg"] + out["pitch_mae_deg"] + out["roll_mae_deg"]) / 3.0
        out["nme_histogram"] = {"bins": NME_BINS[:-1] + ["inf"], "counts": self.nme_hist.tolist()}
        out["geodesic_histogram"] = {"bins": POSE_BINS, "counts": self.geodesic_hist.tolist()}
        return out
