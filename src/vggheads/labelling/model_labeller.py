"""Labeller ``model``: this project's own trained model labels the heads (bootstrapping rounds).

The model is a one-stage detector of heads with their 413 parameters (``vggheads.model.HeadDetector``,
a copy of a previous round's ``data/model``): it runs
on the whole image, and each detection takes the parameters of the model head it overlaps most
(one-to-one matching on box IoU >= ``match_iou``); a detection the model does not confirm gets no
label (``model_no_match``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.param_layout import N_PARAMS
from ..errors import ConfigError, MissingWeightsError
from .base import HeadLabels


class ModelLabeller:
    name = "model"

    def __init__(
        self,
        weights: str | Path,
        match_iou: float = 0.5,
        device: str = "auto",
        min_score: float = 0.3,
        head_model: str | Path | None = None,
    ):
        try:
            from ..model import HeadDetector
        except ImportError:
            raise ConfigError(
                "labels.labeller 'model' needs this project's model (vggheads.model.HeadDetector), "
                "which this checkout does not provide yet; use truth, dad3dnet or landmark-fit"
            ) from None
        weights = Path(weights)
        if not weights.exists():
            raise MissingWeightsError(
                "the project's trained model",
                weights,
                "Copy a trained model (the train stage's data/model folder or its model.safetensors) "
                "there and point labels.model.weights at it (a copy: data/model itself depends on "
                "the labels).",
            )
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.detector = HeadDetector(weights, head_model=head_model, conf=min_score, device=device, vertices=False)
        self.match_iou = float(match_iou)

    def __call__(self, image: np.ndarray, sample_id: str, boxes: np.ndarray, extended: np.ndarray) -> HeadLabels:
        from ..core.metrics import match_hungarian

        labels = HeadLabels.empty(len(boxes), "model_no_match")
        heads = [h for h in self.detector(image) if h.flame_params is not None]
        for d, m, _ in match_hungarian(boxes, [h.box for h in heads], self.match_iou):
            labels.params[d] = np.asarray(heads[m].flame_params, dtype=np.float32).reshape(N_PARAMS)
            labels.ok[d], labels.reasons[d] = True, ""
        return labels
