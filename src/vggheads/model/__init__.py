"""The multi-task detector of the paper (sections 3-5) as an ultralytics task extension.

=====================  ======================================================================
``config``             :class:`ModelConfig`, the architecture record saved with the weights
``head``               ``FlameDetect``: ultralytics' Detect + FLAME branches per pyramid level
``network``            ``HeadDetectionModel``: YOLO11/YOLOv8 backbone + neck + FlameDetect; its loss
``loss``               ``HeadLoss``: cls, CIoU, DFL, OKS reprojection, 3D vertices, geodesic rotation
``dataset``            ``HeadDataset``: the parquet manifests, letterbox, similarity augmentation
``trainer``            ``HeadTrainer``: ultralytics' DetectionTrainer with the hooks overridden
``validator``          ``HeadValidator``: AP plus NME / FR after Hungarian matching; ``evaluate``
``export``             safetensors save/load, ONNX export and its onnxruntime check
``inference``          :class:`HeadDetector` and :class:`DetectedHead` (torch or ONNX)
``draw``               overlay pictures of detections
``toydata``            small procedural manifests for tests and benchmarks
=====================  ======================================================================

Example::

    from vggheads.model import HeadDetector
    heads = HeadDetector("data/model")("photo.jpg")
"""

from __future__ import annotations

from .config import ModelConfig
from .inference import DetectedHead, HeadDetector

__all__ = ["DetectedHead", "HeadDetector", "ModelConfig", "load_model"]


def load_model(path, device: str = "cpu"):
    """A HeadDetectionModel from a ``.safetensors`` file or a directory holding ``model.safetensors``."""
    from .checkpoint import load_model as _load

    return _load(path, device)
