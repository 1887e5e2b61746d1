"""Head detector inference with the paper's settings: plain resize, score > 0.5, greedy NMS at 0.5.

The paper's RT-DETR ran on a plain (aspect-distorting) resize of the image to 640 x 640, kept
boxes scoring above 0.5 and applied greedy NMS at IoU 0.5. ``resize="letterbox"`` keeps the
aspect ratio instead (ultralytics' own preprocessing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, MissingWeightsError

log = logging.getLogger(__name__)

RESIZES = ("plain", "letterbox")


@dataclass
class Detections:
    """The heads found in one image."""

    boxes: np.ndarray  # (N, 4) xyxy pixels of the input image, float32
    scores: np.ndarray  # (N,) float32, descending

    def __len__(self) -> int:
        return len(self.scores)


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``"0"`` (the first GPU) when CUDA is available, else ``"cpu"``."""
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS at ``iou``, in descending score order."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    import torch
    from torchvision.ops import nms as tv_nms

    keep = tv_nms(torch.as_tensor(boxes, dtype=torch.float32), torch.as_tensor(scores, dtype=torch.float32), float(iou))
    return keep.numpy().astype(np.int64)


def load_ultralytics_model(weights: str | Path):
    """An ultralytics YOLO or RT-DETR model from a local checkpoint (nothing is downloaded)."""
    from ..offline import import_ultralytics

    weights = Path(weights)
    if not weights.exists():
        raise MissingWeightsError(
            "head detector weights",
            weights,
            "Train them with the rule train_head_detector (`vggheads train-head-detector`).",
        )
    import_ultralytics()
    import torch
    from ultralytics import RTDETR, YOLO

    try:
        ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise InputError(f"{weights}: not a readable ultralytics checkpoint ({exc})") from None
    model = ckpt.get("model") if isinstance(ckpt, dict) else None
    name = type(model).__name__ if model is not None else ""
    return RTDETR(str(weights)) if "RTDETR" in name else YOLO(str(weights))


class HeadBoxDetector:
    """Head boxes for RGB images with a trained ultralytics detector.

    Example::

        detector = HeadBoxDetector("data/detector/head_detector.pt", imgsz=256)
        found = detector([rgb])[0]        # Detections: boxes (N, 4) xyxy, scores (N,)
    """

    def __init__(
        self,
        weights: str | Path,
        imgsz: int = 640,
        score_threshold: float = 0.5,
        nms_iou: float = 0.5,
        max_detections: int = 100,
        resize: str = "plain",
        device: str = "auto",
        batch_size: int = 8,
    ):
        if resize not in RESIZES:
            raise ValueError(f"resize must be one of {RESIZES}, got '{resize}'")
        self.model = load_ultralytics_model(weights)
        self.weights = Path(weights)
        self.imgsz = int(imgsz)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_detections = int(max_detections)
        self.resize = resize
        self.device = resolve_device(device)
        self.batch_size = max(1, int(batch_size))

    @classmethod
    def from_params(cls, weights: str | Path, cfg: dict) -> "HeadBoxDetector":
        """From the ``detector`` section of params.yaml."""
        return cls(
            weights,
            imgsz=cfg["imgsz"],
            score_threshold=cfg["score_threshold"],
            nms_iou=cfg["nms_iou"],
            max_detections=cfg["max_detections"],
            resize=cfg["resize"],
            device=cfg["device"],
            batch_size=cfg["batch"],
        )

    def _prepare(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(BGR array given to ultralytics, (sx, sy) from its pixels back to the image's)."""
        import cv2

        rgb = np.ascontiguousarray(rgb)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        bgr = np.ascontiguousarray(rgb[..., :3][..., ::-1])
        if self.resize == "letterbox":
            return bgr, np.ones(2)
        H, W = bgr.shape[:2]
        resized = cv2.resize(bgr, (self.imgsz, self.imgsz), interpolation=cv2.INTER_LINEAR)
        return resized, np.array([W / self.imgsz, H / self.imgsz])

    def __call__(self, images: list[np.ndarray]) -> list[Detections]:
        """RGB uint8 images (H, W, 3) -> one :class:`Detections` per image."""
        out: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            prepared = [self._prepare(im) for im in chunk]
            results = self.model.predict(
                [p[0] for p in prepared],
                imgsz=self.imgsz,
                conf=self.score_threshold,
                iou=self.nms_iou,
                agnostic_nms=True,
                max_det=self.max_detections,
                device=self.device,
                verbose=False,
            )
            for im, (_, factor), res in zip(chunk, prepared, results):
                boxes = res.boxes.xyxy.cpu().numpy().astype(np.float64).reshape(-1, 4)
                scores = res.boxes.conf.cpu().numpy().astype(np.float64).reshape(-1)
                boxes[:, [0, 2]] *= factor[0]
                boxes[:, [1, 3]] *= factor[1]
                H, W = im.shape[:2]
                boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, W)
                boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, H)
                ok = (scores > self.score_threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
                boxes, scores = boxes[ok], scores[ok]
                # RT-DETR has no NMS of its own; the paper applies greedy NMS at 0.5 to every detector
                keep = nms(boxes, scores, self.nms_iou)[: self.max_detections]
                out.append(Detections(boxes[keep].astype(np.float32), scores[keep].astype(np.float32)))
        return out

    def detect(self, image: np.ndarray) -> Detections:
        return self([image])[0]
