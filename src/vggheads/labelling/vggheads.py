"""Labeller ``vggheads``: the paper's released model labels the heads (bootstrapping labels from
``vgg_heads_l.trcd`` / ``vgg_heads_l.onnx`` instead of DAD-3DNet).

The released model is a one-stage detector of heads with their 413 parameters
(:class:`vggheads.release.official.OfficialDetector`, the ``head_detector`` package's exact
pipeline); it runs on the whole image, and each detection takes the parameters of the released
model's head it overlaps most (one-to-one on box IoU >= ``match_iou``); a detection it does not
confirm gets no label (``vggheads_no_match``). Parameters are stored in image pixels as every
labeller's; they are FLAME's, so ``headmodel.flame`` must name the FLAME file for the landmarks
and poses decoded from them to mean anything. Weights: CC BY-NC 4.0, never downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import HeadLabels


class VggheadsLabeller:
    name = "vggheads"

    def __init__(
        self,
        weights: str | Path,
        head_model: str | Path,
        match_iou: float = 0.5,
        device: str = "auto",
        min_score: float = 0.3,
        channels: str = "rgb",
    ):
        from ..release.official import OfficialDetector

        self.detector = OfficialDetector(
            weights,
            head_model,
            conf=min_score,
            device=device,
            vertices=False,
            key="labels.vggheads.weights",
            channels=channels,
        )
        self.match_iou = float(match_iou)

    def __call__(self, image: np.ndarray, sample_id: str, boxes: np.ndarray, extended: np.ndarray) -> HeadLabels:
        from ..core.metrics import match_hungarian

        labels = HeadLabels.empty(len(boxes), "vggheads_no_match")
        heads = self.detector(image)
        for d, m, _ in match_hungarian(boxes, [h.box for h in heads], self.match_iou):
            labels.params[d] = np.asarray(heads[m].flame_params, dtype=np.float32).reshape(413)
            labels.ok[d], labels.reasons[d] = True, ""
        return labels
