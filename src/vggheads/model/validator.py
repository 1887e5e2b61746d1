"""``HeadValidator``: ultralytics' detection validation (precision, recall, AP50, AP50-95) plus the
paper's head-vertex NME and failure rate, and the NME over the 68 landmarks.

NMS keeps each box's FLAME parameters; per image, ground-truth heads and predictions are paired by
Hungarian matching at IoU >= 0.5 (:mod:`vggheads.core.metrics`, NME in percent); the matched pairs are decoded
with the head model and compared in input pixels.
"""

from __future__ import annotations

import math

import numpy as np

import torch

from ..offline import import_ultralytics

import_ultralytics()

from ultralytics.models.yolo.detect import DetectionValidator  # noqa: E402
from ultralytics.utils import nms  # noqa: E402
from ultralytics.utils.metrics import DetMetrics  # noqa: E402

from ..geometry import decode  # noqa: E402
from .flame import head_geometry, pad_params  # noqa: E402
from ..core.metrics import (  # noqa: E402
    NME68_ANCHOR_KEY,
    NME68_KEY,
    NME_KEY,
    box_norm,
    failure_rate,
    match_hungarian,
    nme,
)


def summarise(nmes: list[float], nmes68: list[float], n_gt: int, nmes68_anchor: list[float]) -> dict[str, float]:
    """NME (head vertices, percent), FR (fraction of matched heads with NME > 5 %), NME over the 68
    landmarks (percent), the fraction of ground-truth heads matched, and the 68-landmark NME
    (percent) of the best-scoring anchor inside each ground-truth box.

    The last one needs no detection: it measures the 3D regression where the head is, so an
    untrained network has a value to compare with (its detections rarely reach IoU 0.5).
    """
    arr = np.asarray(nmes, dtype=np.float64)
    arr68 = np.asarray(nmes68, dtype=np.float64)
    anchor = np.asarray(nmes68_anchor, dtype=np.float64)
    return {
        NME_KEY: float(arr.mean()) if arr.size else float("nan"),
        "fr": failure_rate(arr),
        NME68_KEY: float(arr68.mean()) if arr68.size else float("nan"),
        "matched": float(arr.size / n_gt) if n_gt else float("nan"),
        NME68_ANCHOR_KEY: float(anchor.mean()) if anchor.size else float("nan"),
    }


HEAD_KEYS = {  # our names -> ultralytics-style metric keys (its results.csv columns; the history renames them back)
    NME_KEY: "metrics/NME",
    "fr": "metrics/FR",
    NME68_KEY: "metrics/NME68",
    "matched": "metrics/matched",
    NME68_ANCHOR_KEY: "metrics/NME68_anchor",
}
NMS_TIME_LIMIT = 60.0  # seconds per image: ultralytics' 0.05 s default truncates NMS on a busy CPU


class HeadMetrics(DetMetrics):
    """DetMetrics plus NME, FR, NME68, the matched fraction and NME68 at the best anchor in each box.

    Fitness (best checkpoint): ``0.1 AP50 - NME68 / 100`` (AP50 a fraction, NME68 in percent; the
    paper selects its model on NME; no matched head counts as NME 100 %), so a checkpoint wins on
    its landmarks unless its detection is clearly worse. Not ultralytics' AP50-95-weighted box fitness: box tightness at IoU 0.95 is not what
    this model is for, and it swings by 0.2 between epochs on a few hundred images, so it picked
    checkpoints with a worse NME.
    """

    def __init__(self, names=None):
        super().__init__(names)
        self.head = summarise([], [], 0, [])

    @property
    def keys(self) -> list[str]:
        return [*DetMetrics.keys.fget(self), *HEAD_KEYS.values()]

    def mean_results(self) -> list[float]:
        return [*super().mean_results(), *(self.head[k] for k in HEAD_KEYS)]

    @property
    def fitness(self) -> float:
        value = self.head[NME68_KEY]
        return float(0.1 * self.box.map50 - (value if math.isfinite(value) else 100.0) / 100.0)


class HeadValidator(DetectionValidator):
    """Validation of a :class:`~vggheads.model.network.HeadDetectionModel` on a :class:`~vggheads.model.dataset.HeadDataset`.

    Used by :class:`~vggheads.model.trainer.HeadTrainer` after every epoch, and by
    :func:`evaluate` on its own.
    """

    def __init__(self, dataloader=None, save_dir=None, args=None, _callbacks=None):
        super().__init__(dataloader, save_dir, args, _callbacks)
        self.metrics = HeadMetrics()

    def get_desc(self) -> str:
        return ("%22s" + "%11s" * 11) % (
            "Class",
            "Images",
            "Instances",
            "Box(P",
            "R",
            "mAP50",
            "mAP50-95)",
            "NME",
            "FR",
            "NME68",
            "matched",
            "NME68@anc",
        )

    def init_metrics(self, model) -> None:
        super().init_metrics(model)
        arch = model.arch
        self.n_shape, self.n_expr = arch.n_shape, arch.n_expr
        self.geometry = head_geometry(arch.head_model, arch.n_shape, arch.n_expr, self.device or "cpu")
        self.head_layer = model.model[-1]
        self.nmes, self.nmes68, self.nmes68_anchor, self.n_gt = [], [], [], 0

    def postprocess(self, preds) -> list[dict[str, torch.Tensor]]:
        self._raw = preds[0] if isinstance(preds, (tuple, list)) else preds  # (B, 5 + P, A), for the anchor NME
        outputs = nms.non_max_suppression(
            preds,
            self.args.conf,
            self.args.iou,
            nc=self.nc,
            multi_label=False,
            agnostic=True,
            max_det=self.args.max_det,
            max_time_img=NMS_TIME_LIMIT,
        )
        return [{"bboxes": x[:, :4], "conf": x[:, 4], "cls": x[:, 5], "extra": x[:, 6:]} for x in outputs]

    def update_metrics(self, preds, batch) -> None:
        super().update_metrics(preds, batch)
        imgsz = torch.tensor(batch["img"].shape[2:], device=batch["img"].device)[[1, 0, 1, 0]]
        centres = (self.head_layer.anchors * self.head_layer.strides).T  # (A, 2) anchor centres, pixels
        pred_rows, gt_rows, gt_lmk, gt_box, anchor_rows, anchor_lmk, anchor_box = [], [], [], [], [], [], []
        for si, pred in enumerate(preds):
            idx = (batch["batch_idx"] == si).nonzero(as_tuple=True)[0]
            self.n_gt += len(idx)
            if not len(idx):
                continue
            xywh = batch["bboxes"][idx] * imgsz
            boxes = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
            for g in range(len(idx)):  # the best-scoring anchor inside each ground-truth box (no detection needed)
                a = _anchor_in_box(centres, self._raw[si, 4], boxes[g])
                anchor_rows.append(self._raw[si, 5:, a])
                anchor_lmk.append(batch["landmarks"][idx[g]])
                anchor_box.append(boxes[g])
            if not len(pred["bboxes"]):
                continue
            for g, p, _ in match_hungarian(boxes.cpu().numpy(), pred["bboxes"].cpu().numpy()):
                pred_rows.append(pred["extra"][p])
                gt_rows.append(batch["flame_params"][idx[g]])
                gt_lmk.append(batch["landmarks"][idx[g]])
                gt_box.append(boxes[g])
        geo = self.geometry
        dev = geo.head_idx.device
        if anchor_rows:
            at = decode(pad_params(torch.stack(anchor_rows).float().to(dev), self.n_shape, self.n_expr), geo.active)
            for k in range(len(anchor_rows)):
                self.nmes68_anchor.append(
                    nme(
                        at.landmarks_image[k].cpu().numpy(),
                        anchor_lmk[k].cpu().numpy(),
                        box_norm(anchor_box[k].cpu().numpy()),
                    )
                )
        if not pred_rows:
            return
        pred = decode(pad_params(torch.stack(pred_rows).float().to(dev), self.n_shape, self.n_expr), geo.active)
        gt = decode(torch.stack(gt_rows).float().to(dev), geo.full)
        hi = geo.head_idx
        for k in range(len(pred_rows)):
            box = box_norm(gt_box[k].cpu().numpy())
            self.nmes.append(nme(pred.vertices_image[k, hi].cpu().numpy(), gt.vertices_image[k, hi].cpu().numpy(), box))
            self.nmes68.append(nme(pred.landmarks_image[k].cpu().numpy(), gt_lmk[k].cpu().numpy(), box))

    def get_stats(self) -> dict:
        self.metrics.head = summarise(self.nmes, self.nmes68, self.n_gt, self.nmes68_anchor)
        return super().get_stats()


FRIENDLY = {
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "ap50",
    "metrics/mAP50-95(B)": "ap50_95",
    **{v: k for k, v in HEAD_KEYS.items()},
    "fitness": "fitness",
}


def _anchor_in_box(centres: torch.Tensor, scores: torch.Tensor, box: torch.Tensor) -> int:
    """Index of the highest-scoring anchor whose centre lies in ``box`` (the nearest anchor if none does)."""
    inside = ((centres >= box[:2]) & (centres <= box[2:])).all(1)
    if not inside.any():
        return int(((centres - (box[:2] + box[2:]) / 2) ** 2).sum(1).argmin())
    return int(torch.where(inside, scores, scores.new_tensor(-1.0)).argmax())


def validate(
    model, dataset, batch_size: int = 8, conf: float = 0.001, iou: float = 0.5, device: str = "cpu", save_dir=None
) -> dict[str, float]:
    """Validate ``model`` on ``dataset`` outside training; ultralytics' metric keys (``metrics/mAP50(B)``,
    ``metrics/NME``, ..., ``fitness``)."""
    import tempfile
    from pathlib import Path

    save_dir = Path(save_dir or tempfile.mkdtemp(prefix="vggheads-val-"))
    v = HeadValidator(
        save_dir=save_dir,
        args={
            "conf": conf,
            "iou": iou,
            "imgsz": dataset.imgsz,
            "plots": False,
            "batch": batch_size,
            "device": device,
            "verbose": False,
        },
    )
    v.device = torch.device(device)
    v.training = False
    v.data = {"names": model.names, "nc": len(model.names), "channels": 3, "val": ""}
    v.dataloader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=dataset.collate_fn
    )
    model = model.to(device).eval()
    v.init_metrics(model)
    with torch.inference_mode():
        for batch in v.dataloader:
            batch = v.preprocess(batch)
            v.update_metrics(v.postprocess(model(batch["img"])), batch)
    stats = v.get_stats()
    v.print_results()
    return {k: float(val) for k, val in stats.items()}


def evaluate(model, dataset, **kwargs) -> dict[str, float]:
    """:func:`validate` with short names: ``precision``, ``recall``, ``ap50``, ``ap50_95`` (fractions),
    ``nme_pct``, ``fr``, ``nme68_pct``, ``matched``, ``nme68_anchor_pct``, ``fitness``.

    Example::

        metrics = evaluate(model, HeadDataset(images, heads, "val", imgsz=160))
    """
    return {FRIENDLY[k]: v for k, v in validate(model, dataset, **kwargs).items() if k in FRIENDLY}
