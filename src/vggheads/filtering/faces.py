"""Face detectors whose weights ship inside PyPI packages (nothing is downloaded).

- ``mtcnn``: MTCNN (P/R/O-nets) from ``facenet-pytorch`` (its weights are in the wheel; install it
  with ``pip install --no-deps facenet-pytorch==2.6.0``: its torch/numpy pins are stale);
- ``dlib-hog``: dlib's HOG frontal face detector (compiled into ``dlib-bin``);
- ``dlib-mmod``: dlib's MMOD CNN face detector, ``mmod_human_face_detector.dat`` from
  ``face-recognition-models`` (slow on a CPU).

The paper used insightface's FaceAnalysis (RetinaFace), whose weights are downloaded at run time.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, MissingWeightsError

FACE_DETECTORS = ("mtcnn", "dlib-hog", "dlib-mmod")


class FaceDetector:
    """``detector(rgb) -> (F, 4)`` xyxy face boxes.

    ``min_score`` is MTCNN's face probability threshold; dlib's detectors keep their own default
    threshold and look ``upsample`` times upsampled (finds faces down to ~40 px at 1).

    Example::

        faces = FaceDetector("mtcnn", min_score=0.9)(rgb)
    """

    def __init__(
        self,
        kind: str = "mtcnn",
        min_score: float = 0.9,
        min_face_size: int = 20,
        device: str = "auto",
        upsample: int = 1,
    ):
        if kind not in FACE_DETECTORS:
            raise ConfigError(f"filter.face_detector '{kind}' is unknown (known: {', '.join(FACE_DETECTORS)})")
        self.kind = kind
        self.min_score = float(min_score)
        self.upsample = int(upsample)
        if kind == "mtcnn":
            try:
                from facenet_pytorch import MTCNN
            except ImportError:
                raise MissingWeightsError(
                    "MTCNN (package facenet-pytorch)",
                    "facenet_pytorch",
                    "Install it with `pip install --no-deps facenet-pytorch==2.6.0` "
                    "(the Makefile does), or set filter.face_detector: dlib-hog.",
                ) from None
            import torch

            dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
            self._mtcnn = MTCNN(keep_all=True, min_face_size=int(min_face_size), device=dev)
        elif kind == "dlib-hog":
            import dlib

            self._hog = dlib.get_frontal_face_detector()
        else:
            import dlib

            from ..labelling.landmark_fit import dlib_model_path

            self._mmod = dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod_human_face_detector.dat")))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = np.ascontiguousarray(rgb[..., :3])
        if self.kind == "mtcnn":
            boxes, probs = self._mtcnn.detect(rgb)
            if boxes is None:
                return np.zeros((0, 4))
            probs = np.asarray(probs, dtype=np.float64)
            return np.asarray(boxes, dtype=np.float64)[probs >= self.min_score].reshape(-1, 4)
        if self.kind == "dlib-hog":
            rects = self._hog(rgb, self.upsample)
            return np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], dtype=np.float64).reshape(
                -1, 4
            )
        found = self._mmod(rgb, self.upsample)
        return np.array(
            [[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in found], dtype=np.float64
        ).reshape(-1, 4)
