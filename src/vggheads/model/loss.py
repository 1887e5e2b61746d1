"""``HeadLoss``: detection (classification, CIoU, DFL) plus the paper's FLAME terms on positive anchors.

Terms and names (each logged as ``train/<name>`` and ``val/<name>``), paper section 4 and its YAML:

- ``cls_loss``: focal (or BCE) on the task-aligned soft targets, over every anchor;
- ``iou_loss``: CIoU; ``dfl_loss``: distribution focal loss (ultralytics' BboxLoss);
- ``reproj_loss``: 2D reprojection of the head vertices, ``reproj_kind``: ``oks`` (the paper code's
  ``1 - exp(-d^2 / (2 sigma)^2 / (0.53 area) / 2)`` with the ground-truth box area, sigma 0.025) or
  ``nme`` (the mean vertex distance over ``sqrt(area)``: the validation NME itself, whose gradient
  does not fade as the error grows, as OKS's does beyond ~sigma, or shrink to nothing near zero);
- ``vertices3d_loss``: SmoothL1 between canonical (unrotated) head vertices, normalised to the unit
  cube of the template's head;
- ``rotation_loss``: geodesic angle ``arccos((tr(Rp Rgt^T) - 1) / 2)`` in radians;
- ``landmarks_loss`` (beyond the paper): the 68 landmarks' mean 2D distance over ``sqrt(area)``, the
  validation NME68 itself. The head-vertex terms are dominated by the skull, whose place depends on
  shape and scale; the facial landmarks are what the image shows and what NME68 scores, and their
  term gives rotation and translation a sharper gradient (weight 0 = the paper's loss).

Anchors are assigned by ultralytics' TaskAlignedAssigner (paper code: top-k 13, alpha 1, beta 6; alpha
is a setting because from a random initialisation alpha 1 finds almost no positives for small heads);
the FLAME terms are weighted means over positive anchors (weight = the anchor's target score).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..offline import import_ultralytics

import_ultralytics()

from ultralytics.utils.loss import v8DetectionLoss  # noqa: E402
from ultralytics.utils.tal import TaskAlignedAssigner, make_anchors  # noqa: E402

from ..core.param_layout import ROT6D, SCALE, TRANSLATION  # noqa: E402
from ..geometry.projection import landmarks  # noqa: E402
from ..geometry.rotations import rot6d_to_matrix  # noqa: E402
from .flame import head_geometry, pad_params  # noqa: E402

LOSS_NAMES = ("cls_loss", "iou_loss", "dfl_loss", "reproj_loss", "vertices3d_loss", "rotation_loss", "landmarks_loss")
OKS_AREA_FACTOR = 0.53  # the paper code's box-area -> object-area factor in the OKS term
# SmoothL1 knee in unit-cube units: normalised errors are ~0.01-0.1, where beta=1 would be a weak L2
VERTICES_BETA = 0.01
ASSIGNER_BETA = 6.0  # IoU exponent of the task-aligned metric (paper code and ultralytics)


@dataclass
class LossSettings:
    """Weights and settings of :class:`HeadLoss` (params.yaml ``train.loss``)."""

    classification: str = "focal"  # focal | bce
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    cls: float = 1.0
    iou: float = 2.0
    dfl: float = 0.01
    reproj: float = 5.0
    reproj_kind: str = "oks"  # oks | nme
    vertices3d: float = 50.0
    rotation: float = 1.0
    landmarks: float = 0.0
    oks_sigma: float = 0.025
    assigner_topk: int = 13
    assigner_alpha: float = 0.5

    @classmethod
    def from_params(cls, section: dict) -> "LossSettings":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in section.items() if k in known})

    def to_dict(self) -> dict:
        return asdict(self)


def _pad_per_image(values: Tensor, batch_idx: Tensor, batch_size: int) -> Tensor:
    """Rows ``(N, D)`` grouped by image (batch_idx sorted) -> ``(B, M, D)``, zero padded; the same
    layout as ultralytics' ``v8DetectionLoss.preprocess`` gives the boxes."""
    if not len(values):
        return values.new_zeros(batch_size, 0, values.shape[-1])
    counts = torch.bincount(batch_idx, minlength=batch_size)
    out = values.new_zeros(batch_size, int(counts.max()), values.shape[-1])
    within = torch.arange(len(batch_idx), device=values.device) - (counts.cumsum(0) - counts)[batch_idx]
    out[batch_idx, within] = values
    return out


def geodesic(R1: Tensor, R2: Tensor) -> Tensor:
    """Angle in radians between rotations ``(N, 3, 3)``; clamped so the gradient stays finite at 0 and pi."""
    cos = ((R1 * R2).sum((-2, -1)) - 1.0) / 2.0  # tr(R1 R2^T) = sum of the elementwise product
    return torch.acos(cos.clamp(-1.0 + 1e-6, 1.0 - 1e-6))


class HeadLoss(v8DetectionLoss):
    """The multi-task loss; ``model.loss(batch)`` creates it through ``init_criterion``.

    Batch keys (ultralytics' plus one): ``batch_idx``, ``cls``, ``bboxes`` (normalised xywh),
    ``flame_params`` ``(N, 413)`` in input pixels.

    Example::

        loss, items = model.loss(batch)   # items: {"cls_loss": ..., "reproj_loss": ..., ...}
    """

    def __init__(self, model):
        self.settings: LossSettings = getattr(model, "loss_settings", None) or LossSettings()
        super().__init__(model, tal_topk=self.settings.assigner_topk)
        m = model.model[-1]
        self.assigner = TaskAlignedAssigner(
            topk=self.settings.assigner_topk,
            num_classes=self.nc,
            alpha=self.settings.assigner_alpha,
            beta=ASSIGNER_BETA,
            stride=self.stride.tolist(),
        )
        self.loss_names = LOSS_NAMES
        self.head = m
        arch = model.arch
        self.n_shape, self.n_expr = arch.n_shape, arch.n_expr
        self.head_model = arch.head_model

    def _geometry(self):
        return head_geometry(self.head_model, self.n_shape, self.n_expr, self.device)

    def _classification(self, logits: Tensor, target: Tensor) -> Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        if self.settings.classification == "bce":
            return bce
        p = logits.sigmoid()
        # focal loss on soft targets: |target - p|^gamma scales BCE (quality focal form, equal to focal for 0/1 targets)
        weight = (target - p).abs().pow(self.settings.focal_gamma)
        alpha = self.settings.focal_alpha
        if alpha > 0:
            weight = weight * torch.where(target > 0, alpha, 1 - alpha)
        return bce * weight

    def loss(self, preds: dict[str, Tensor], batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        s = self.settings
        loss = torch.zeros(len(LOSS_NAMES), device=self.device)
        pred_distri = preds["boxes"].permute(0, 2, 1).contiguous()
        pred_scores = preds["scores"].permute(0, 2, 1).contiguous()
        raw = preds["flame"].permute(0, 2, 1).contiguous()  # (B, A, P)
        anchor_points, stride_tensor = make_anchors(preds["feats"], self.stride, 0.5)
        dtype, B = pred_scores.dtype, pred_scores.shape[0]
        imgsz = torch.tensor(preds["feats"][0].shape[2:], device=self.device, dtype=dtype) * self.stride[0]

        batch_idx = batch["batch_idx"].view(-1).to(self.device)
        targets = torch.cat(
            (batch_idx.view(-1, 1), batch["cls"].view(-1, 1).to(self.device), batch["bboxes"].to(self.device)), 1
        )
        targets = self.preprocess(targets, B, scale_tensor=imgsz[[1, 0, 1, 0]])
        gt_labels, gt_bboxes = targets.split((1, 4), 2)
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)
        # the head geometry is float32 whatever the autocast (AMP on a GPU): fp16 pixel coordinates are off by
        # 0.25 px at 512 and the rotation's acos is unstable near 1
        gt_params = _pad_per_image(batch["flame_params"].to(self.device, torch.float32), batch_idx.long(), B)

        pred_bboxes = self.bbox_decode(anchor_points, pred_distri)
        _, target_bboxes, target_scores, fg_mask, target_gt_idx = self.assigner(
            pred_scores.detach().sigmoid(),
            (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
            anchor_points * stride_tensor,
            gt_labels,
            gt_bboxes,
            mask_gt,
        )
        target_scores_sum = target_scores.sum().clamp_(min=1)

        loss[0] = self._classification(pred_scores, target_scores.to(dtype)).sum() / target_scores_sum
        loss[1], loss[2] = self.bbox_loss(
            pred_distri,
            pred_bboxes,
            anchor_points,
            target_bboxes / stride_tensor,
            target_scores,
            target_scores_sum,
            fg_mask,
            imgsz,
            stride_tensor,
        )
        if fg_mask.any():
            with torch.autocast(raw.device.type, enabled=False):
                loss[3:] = self._flame_terms(
                    raw.float(),
                    fg_mask,
                    target_gt_idx,
                    gt_params,
                    target_bboxes.float(),
                    target_scores.float(),
                    anchor_points.float(),
                    stride_tensor.float(),
                )
        else:  # keep the FLAME branches in the graph (DDP needs every parameter used)
            loss[3] = loss[3] + raw.sum() * 0.0
        loss = loss * loss.new_tensor([s.cls, s.iou, s.dfl, s.reproj, s.vertices3d, s.rotation, s.landmarks])
        return loss * B, dict(zip(LOSS_NAMES, loss.detach()))

    def _flame_terms(
        self, raw, fg_mask, target_gt_idx, gt_params, target_bboxes, target_scores, anchor_points, stride_tensor
    ) -> Tensor:
        geo = self._geometry()
        b_idx, a_idx = fg_mask.nonzero(as_tuple=True)
        weight = target_scores[b_idx, a_idx].sum(-1)
        weight = weight / weight.sum().clamp_min(1e-9)
        # activated predictions at the positive anchors, padded to the 413-vector
        pred = self.head.decode_flame(raw[b_idx, a_idx].T[None], anchor_points[a_idx].T, stride_tensor[a_idx].T)[0].T
        pred = pad_params(pred, self.n_shape, self.n_expr)
        # ground truth: decode each assigned ground-truth head once
        gt_idx = target_gt_idx[b_idx, a_idx]
        pairs, inverse = torch.unique(b_idx * gt_params.shape[1] + gt_idx, return_inverse=True)
        gt = gt_params.view(-1, gt_params.shape[-1])[pairs]
        with torch.no_grad():
            gt_full = geo.canonical(gt, full=True)
            gt_canon = gt_full[:, geo.head_idx]
            gt_img = _project(gt_canon, gt)
            gt_lmk = _project(landmarks(gt_full, geo.full), gt)
        gt_canon, gt_img, gt_lmk = gt_canon[inverse], gt_img[inverse], gt_lmk[inverse]
        gt_R = rot6d_to_matrix(gt[:, ROT6D])[inverse]
        pred_full = geo.canonical(pred)
        pred_canon = pred_full[:, geo.head_idx]
        pred_R = rot6d_to_matrix(pred[:, ROT6D])
        pred_img = _project(pred_canon, pred, pred_R)
        pred_lmk = _project(landmarks(pred_full, geo.active), pred, pred_R)

        box = target_bboxes[b_idx, a_idx]
        area = ((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])).clamp_min(1.0)
        d2 = (pred_img - gt_img).pow(2).sum(-1)  # (N, Vh)
        if self.settings.reproj_kind == "nme":
            reproj = (d2 + 1e-6).sqrt().mean(-1) / area.sqrt()
        else:
            e = d2 / (2 * self.settings.oks_sigma) ** 2 / (OKS_AREA_FACTOR * area[:, None]) / 2
            reproj = (1 - torch.exp(-e)).mean(-1)
        vertices = F.smooth_l1_loss(
            geo.normalise(pred_canon), geo.normalise(gt_canon), reduction="none", beta=VERTICES_BETA
        ).mean((-2, -1))
        rotation = geodesic(pred_R, gt_R)
        lmk = ((pred_lmk - gt_lmk).pow(2).sum(-1) + 1e-6).sqrt().mean(-1) / area.sqrt()
        return torch.stack(
            [(reproj * weight).sum(), (vertices * weight).sum(), (rotation * weight).sum(), (lmk * weight).sum()]
        )


def _project(canonical: Tensor, params: Tensor, R: Tensor | None = None) -> Tensor:
    """Image xy of canonical vertices ``(N, V, 3)`` under ``params (N, 413)``: ``s R v + t`` -> ``(N, V, 2)``."""
    R = rot6d_to_matrix(params[:, ROT6D]) if R is None else R
    v = torch.einsum("nij,nvj->nvi", R[:, :2], canonical)
    return params[:, SCALE, None] * v + params[:, None, TRANSLATION.start : TRANSLATION.start + 2]
