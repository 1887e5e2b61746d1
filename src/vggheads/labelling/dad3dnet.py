"""Labeller ``dad3dnet``: the official DAD-3DNet TorchScript file (``dad_3dheads.trcd``), as the paper.

Contract (DAD-3DHeads ``predictor.py``, paper section 8):

- input: one float32 batch ``(B, 3, S, S)``, S = 256: the crop resized so its longest side is S
  (``LongestMaxSize``, bilinear), padded to S x S with black centred (``PadIfNeeded``: top =
  (S - h) // 2, left = (S - w) // 2), then normalised with ImageNet's mean and std on /255 pixels;
- output: a dict with ``OUTPUT_3DMM_PARAMS`` ``(B, 413)`` (shape 300, expression 100, jaw 3,
  rotation 6, translation 3, scale 1) and usually ``OUTPUT_LANDMARKS_HEATMAP``; a bare
  ``(B, 413)`` tensor is accepted too. The parameters are in DAD's normalised convention
  ``v_S = ((s + 1) R v + [tx, ty, 0] + 1) / 2 * S`` on the padded S x S input.

``readjust_3dmm_to_the_input_image`` maps them to the crop's pixels; adding the crop origin gives
image pixels. Written in this project's convention ``v_img = s_img (R v) + t_img``:
``s_img = S/2 (s + 1) / k`` and ``t_img = (S/2 (t + 1) - pad) / k + origin`` for x, y (k = the
resize factor). DAD's projection ignores its depth translation; it is kept as ``S/2 (t_z + 1) / k``
so that :func:`image_to_release` inverts the mapping exactly (depth is only an offset here).

The weights are CC BY-NC-SA 4.0 and never downloaded: put the file at ``labels.dad3dnet.weights``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..core.param_layout import N_PARAMS, SCALE_INDEX, TRANSLATION
from ..errors import InputError, MissingWeightsError
from .base import HeadLabels
from .crops import crop

log = logging.getLogger(__name__)

OUTPUT_KEY = "OUTPUT_3DMM_PARAMS"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SCALE, TRANSLATION = SCALE_INDEX, TRANSLATION


def preprocess(crop_rgb: np.ndarray, size: int = 256) -> tuple[np.ndarray, float, int, int]:
    """One crop -> (normalised CHW float32 (3, size, size), resize factor k, pad top, pad left)."""
    import cv2

    h, w = crop_rgb.shape[:2]
    k = size / float(max(h, w))
    new_h, new_w = int(round(h * k)), int(round(w * k))
    resized = (
        cv2.resize(crop_rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR) if (new_h, new_w) != (h, w) else crop_rgb
    )
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas = np.zeros((size, size, 3), dtype=np.float32)  # black padding, then normalised (Compose order)
    canvas[top : top + new_h, left : left + new_w] = resized[..., :3]
    x = (canvas / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32), k, top, left


def dad_to_image(params: np.ndarray, k, pad_top, pad_left, origin_x, origin_y, size: int = 256) -> np.ndarray:
    """DAD's normalised parameters (B, 413) of crops -> this project's image-pixel convention.

    k, pad_top, pad_left, origin_x, origin_y: (B,) per crop (see the module docstring).
    """
    p = np.array(params, dtype=np.float64).reshape(-1, N_PARAMS)
    k = np.asarray(k, dtype=np.float64).reshape(-1)
    half = size / 2.0
    out = p.copy()
    out[:, SCALE] = half * (p[:, SCALE] + 1.0) / k
    out[:, 409] = (half * (p[:, 409] + 1.0) - np.asarray(pad_left)) / k + np.asarray(origin_x)
    out[:, 410] = (half * (p[:, 410] + 1.0) - np.asarray(pad_top)) / k + np.asarray(origin_y)
    out[:, 411] = half * (p[:, 411] + 1.0) / k
    return out.astype(np.float32)


def image_to_release(params: np.ndarray, extended_xyxy: np.ndarray, size: int = 256) -> np.ndarray:
    """This project's image-pixel parameters -> the VGGHeads release convention (DAD's, readjusted to
    the crop): ``v_crop = ((s + 1) R v + [tx, ty, 0] + 1) / 2 * size`` and ``v_img = v_crop + extended_bbox[:2]``.

    The inverse of :func:`dad_to_image` with k = 1 and no padding (the release stores crop pixels).
    """
    p = np.array(params, dtype=np.float64).reshape(-1, N_PARAMS)
    ext = np.asarray(extended_xyxy, dtype=np.float64).reshape(-1, 4)
    half = size / 2.0
    out = p.copy()
    out[:, SCALE] = p[:, SCALE] / half - 1.0
    out[:, 409] = (p[:, 409] - ext[:, 0]) / half - 1.0
    out[:, 410] = (p[:, 410] - ext[:, 1]) / half - 1.0
    out[:, 411] = p[:, 411] / half - 1.0
    return out.astype(np.float32)


class Dad3dNetLabeller:
    """DAD-3DNet on 25 %-extended head crops, batched.

    Example::

        labeller = Dad3dNetLabeller("models/dad_3dheads.trcd")
        labels = labeller(image, sample_id, boxes, extended)     # HeadLabels, image-pixel convention
    """

    name = "dad3dnet"

    def __init__(self, weights: str | Path, img_size: int = 256, device: str = "auto", batch_size: int = 16):
        import torch

        weights = Path(weights)
        if not weights.exists():
            raise MissingWeightsError(
                "DAD-3DNet TorchScript file",
                weights,
                "Download dad_3dheads.trcd from the DAD-3DHeads project (https://github.com/PinataFarms/DAD-3DHeads, "
                "CC BY-NC-SA 4.0) and set labels.dad3dnet.weights to its path; nothing is downloaded at run time.",
            )
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        try:
            self.model = torch.jit.load(str(weights), map_location=self.device).eval()
        except Exception as exc:  # not TorchScript, truncated, ...
            raise InputError(f"{weights}: not a loadable TorchScript file ({exc})") from None
        self.img_size = int(img_size)
        self.batch_size = max(1, int(batch_size))

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.model(torch.from_numpy(batch).to(self.device))
        if isinstance(out, dict):
            if OUTPUT_KEY not in out:
                raise InputError(f"DAD-3DNet output has keys {sorted(out)}, expected '{OUTPUT_KEY}'")
            out = out[OUTPUT_KEY]
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape != (len(batch), N_PARAMS):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(f"DAD-3DNet output has shape {shape}, expected ({len(batch)}, {N_PARAMS})")
        return out.float().cpu().numpy()

    def __call__(self, image: np.ndarray, sample_id: str, boxes: np.ndarray, extended: np.ndarray) -> HeadLabels:
        n = len(boxes)
        labels = HeadLabels.empty(n, "empty_crop")
        items = []
        for i, ext in enumerate(extended):
            c = crop(image, ext)
            if c.shape[0] < 2 or c.shape[1] < 2:
                continue
            x, k, top, left = preprocess(c, self.img_size)
            items.append((i, x, k, top, left, float(ext[0]), float(ext[1])))
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            raw = self._forward(np.stack([it[1] for it in chunk]))
            cols = list(zip(*[it[2:] for it in chunk]))
            params = dad_to_image(raw, *cols, size=self.img_size)
            for (i, *_), p in zip(chunk, params):
                if np.isfinite(p).all():
                    labels.params[i], labels.ok[i], labels.reasons[i] = p, True, ""
                else:
                    labels.reasons[i] = "non_finite_output"
        return labels
