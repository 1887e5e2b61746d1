"""Real peer systems whose weights ship inside their packages, as :data:`~.types.Predictor`\\ s.

* ``mtcnn``: MTCNN from ``facenet-pytorch`` (P/R/O-nets inside the wheel; install it with
  ``pip install --no-deps facenet-pytorch==2.6.0``, its pins are stale). Face boxes + probability.
* ``dlib-hog``: dlib's HOG + linear SVM frontal face detector (compiled into ``dlib``); the SVM
  margin is the score (``adjust_threshold`` lowers the cut to get a PR curve).
* ``dlib-mmod``: dlib's MMOD CNN face detector (``mmod_human_face_detector.dat`` from
  ``face-recognition-models``); slow on a CPU (about 20 s for a 1024 px photo at upsample 1).
* ``dlib-68``: a dlib detector + dlib's 68-point shape predictor (iBUG 300-W, non-commercial
  licence), and, given a head model, the pose of the head model fitted to those 68 points
  (:func:`vggheads.core.fitting.fit_landmarks`): the paper's "Dlib" row.
* ``vggheads-official``: the paper's released model (``vgg_heads_l.trcd`` / ``.onnx``, CC BY-NC
  4.0, never downloaded; :mod:`vggheads.release.official`): head boxes, scores, the 413
  parameters, landmarks, pose and face boxes, as this project's model. Its weights do not ship in
  a package: ``evaluate.vggheads_official.weights`` names the file.

All boxes are face boxes (these are face detectors), ``[x1, y1, x2, y2]`` with exclusive right
and bottom edges (dlib's inclusive ``right()``/``bottom()`` + 1).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from ..errors import MissingWeightsError
from .types import HeadPrediction

log = logging.getLogger(__name__)

PEERS = ("mtcnn", "dlib-hog", "dlib-mmod", "dlib-68", "vggheads-official")
OFFICIAL_MIN_SCORE = 0.01  # as for this project's model: each protocol applies its own threshold
OFFICIAL_MAX_HEADS = 1000  # the paper's WIDER script keeps up to 1000 boxes


def dlib_model_path(name: str) -> Path:
    """A ``.dat`` file of the ``face-recognition-models`` package, found by path (importing the
    package fails on ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.origin:
        raise MissingWeightsError(
            f"dlib model '{name}'",
            "face_recognition_models",
            "Install it: pip install face-recognition-models==0.3.0 (the project's dependencies).",
        )
    path = Path(spec.origin).parent / "models" / name
    if not path.exists():
        raise MissingWeightsError(f"dlib model '{name}'", path, "Reinstall face-recognition-models==0.3.0.")
    return path


def _dlib_box(rect) -> np.ndarray:
    return np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float64)


class DlibHogDetector:
    """dlib's frontal HOG detector. Example: ``DlibHogDetector(upsample=1)(image)``."""

    name = "dlib-hog"

    def __init__(self, upsample: int = 1, adjust_threshold: float = -0.5):
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.upsample, self.adjust_threshold = upsample, adjust_threshold

    def detect(self, image: np.ndarray) -> list[tuple[object, float]]:
        rects, scores, _ = self.detector.run(np.ascontiguousarray(image), self.upsample, self.adjust_threshold)
        return list(zip(rects, scores))

    def __call__(self, image: np.ndarray) -> list[HeadPrediction]:
        return [HeadPrediction(box=_dlib_box(r), score=s) for r, s in self.detect(image)]


class DlibMmodDetector:
    """dlib's MMOD CNN face detector; the detection confidence is the score."""

    name = "dlib-mmod"

    def __init__(self, upsample: int = 1):
        import dlib

        self.detector = dlib.cnn_face_detection_model_v1(str(dlib_model_path("mmod_human_face_detector.dat")))
        self.upsample = upsample

    def detect(self, image: np.ndarray) -> list[tuple[object, float]]:
        return [(d.rect, float(d.confidence)) for d in self.detector(np.ascontiguousarray(image), self.upsample)]

    def __call__(self, image: np.ndarray) -> list[HeadPrediction]:
        return [HeadPrediction(box=_dlib_box(r), score=s) for r, s in self.detect(image)]


class MtcnnDetector:
    """MTCNN (facenet-pytorch, CPU): face boxes and probabilities."""

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20, thresholds=(0.6, 0.7, 0.7), device: str = "cpu"):
        try:
            from facenet_pytorch import MTCNN
        except ImportError:
            raise MissingWeightsError(
                "MTCNN (facenet-pytorch)",
                "facenet_pytorch",
                "Install it without its stale pins: pip install --no-deps facenet-pytorch==2.6.0",
            ) from None
        self.model = MTCNN(
            keep_all=True,
            device=device,
            min_face_size=min_face_size,
            thresholds=list(thresholds),
            post_process=False,
            select_largest=False,
        )

    def __call__(self, image: np.ndarray) -> list[HeadPrediction]:
        import torch

        with torch.inference_mode():
            boxes, probs = self.model.detect(np.ascontiguousarray(image))
        if boxes is None:
            return []
        return [HeadPrediction(box=b, score=float(p)) for b, p in zip(boxes, probs)]


class DlibLandmarks68:
    """A dlib face detector + dlib's 68-point predictor; with ``landmark_model`` also the pose of
    the head model fitted to the 68 points (``rotation`` and ``angles`` of each prediction).

    Example::

        model = LandmarkModel.from_head_model(load_head_model(path))
        peer = DlibLandmarks68(detector="hog", landmark_model=model)
        heads = peer(image)          # each with .landmarks (68, 2) and .angles
    """

    name = "dlib-68"

    def __init__(self, detector: str = "hog", upsample: int = 1, landmark_model=None, fit_kwargs: dict | None = None):
        import dlib

        if detector == "hog":
            self.detector = DlibHogDetector(upsample=upsample, adjust_threshold=0.0)
        elif detector == "mmod":
            self.detector = DlibMmodDetector(upsample=upsample)
        else:
            raise ValueError(f"unknown dlib detector '{detector}' (hog | mmod)")
        self.predictor = dlib.shape_predictor(str(dlib_model_path("shape_predictor_68_face_landmarks.dat")))
        self.landmark_model = landmark_model
        self.fit_kwargs = fit_kwargs or {}

    def __call__(self, image: np.ndarray) -> list[HeadPrediction]:
        image = np.ascontiguousarray(image)
        found = self.detector.detect(image)
        if not found:
            return []
        points = np.array([[(p.x, p.y) for p in self.predictor(image, r).parts()] for r, _ in found], dtype=np.float64)
        fit = None
        if self.landmark_model is not None:
            from ..core.fitting import fit_landmarks

            fit = fit_landmarks(points, self.landmark_model, **self.fit_kwargs)
            yaw, pitch, roll = fit.angles
        out = []
        for i, (rect, score) in enumerate(found):
            kwargs = {}
            if fit is not None:
                kwargs = {"rotation": fit.R[i], "angles": (float(yaw[i]), float(pitch[i]), float(roll[i]))}
            out.append(HeadPrediction(box=_dlib_box(rect), score=score, landmarks=points[i], **kwargs))
        return out


def build_peer(name: str, landmark_model=None, **kwargs):
    """A peer predictor by name (see :data:`PEERS`)."""
    if name == "mtcnn":
        return MtcnnDetector(**kwargs)
    if name == "dlib-hog":
        return DlibHogDetector(**kwargs)
    if name == "dlib-mmod":
        return DlibMmodDetector(**kwargs)
    if name == "dlib-68":
        return DlibLandmarks68(landmark_model=landmark_model, **kwargs)
    if name == "vggheads-official":
        return official_system(**kwargs)
    raise ValueError(f"unknown peer '{name}' (known: {', '.join(PEERS)})")


class OfficialSystem:
    """The released VGGHeads model as a Predictor (``evaluate.systems: [vggheads-official]``), with
    the channel order of the paper's script for each benchmark (:meth:`for_benchmark`)."""

    name = "vggheads-official"

    def __init__(self, detector, bgr_benchmarks=()):
        self.detector, self.bgr_benchmarks = detector, tuple(bgr_benchmarks)

    def __call__(self, image: np.ndarray) -> list[HeadPrediction]:
        return [h.to_prediction() for h in self.detector(image)]

    def for_benchmark(self, benchmark: str) -> "OfficialSystem":
        """Itself, with the images of ``benchmark`` fed BGR when it is one of ``bgr_benchmarks``."""
        self.detector.channels = "bgr" if benchmark in self.bgr_benchmarks else "rgb"
        return self


def official_system(
    weights, head_model, preprocess: str = "evaluation", device: str = "auto", bgr_benchmarks=()
) -> OfficialSystem:
    """The released model for evaluation. ``preprocess``: ``evaluation`` (the paper's evaluation
    scripts: bilinear resize, padding at the bottom right) or ``package`` (``head_detector``:
    Lanczos, centred); ``bgr_benchmarks``: benchmarks whose images go in BGR order (the paper's
    pose, DAD-3DHeads and FDDB scripts). A low score threshold and up to 1000 heads: every protocol
    applies its own threshold, as for this project's model.
    """
    from ..release.official import OfficialDetector

    if head_model is None:
        from ..errors import ConfigError

        raise ConfigError("vggheads-official needs the head model its parameters decode through (FLAME): --head-model")
    detector = OfficialDetector(
        weights,
        head_model,
        conf=OFFICIAL_MIN_SCORE,
        keep_top_k=OFFICIAL_MAX_HEADS,
        mode=preprocess,
        device=device,
        key="evaluate.vggheads_official.weights",
    )
    return OfficialSystem(detector, bgr_benchmarks)
