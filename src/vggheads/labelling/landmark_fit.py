"""Labeller ``landmark-fit``: dlib's 68-point predictor, then a batched 3DMM fit with priors.

1. A face rectangle per head: dlib's HOG face detector on the 25 %-extended crop (upsampled once
   when the crop is small), the face whose centre lies in the head box and overlaps it most; when
   HOG finds none (profiles, small or stylised faces), a rectangle placed in the head box where a
   HOG face box sits on a frontal head (``face_from_head_box``).
2. dlib's ``shape_predictor_68_face_landmarks.dat`` (iBUG 300-W order, the 68 landmarks of the
   paper) gives 68 points in image pixels.
3. :func:`vggheads.core.fitting.fit_landmarks` fits rotation, scale, translation and the first shape
   and expression components under a Gaussian prior to all heads of the image at once.

The weights ship inside the ``face-recognition-models`` package (iBUG 300-W terms: research use);
the files are located by path, nothing is downloaded. ``refine_labels`` runs the same fit to
refine another labeller's parameters.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from ..core.param_layout import ROT6D, SCALE_INDEX, TRANSLATION
from ..errors import MissingWeightsError
from .base import HeadLabels

log = logging.getLogger(__name__)

PREDICTOR_68 = "shape_predictor_68_face_landmarks.dat"
CONTOUR = slice(0, 17)  # the jaw line: its 3D points depend on yaw (FLAME's dynamic contour)


def dlib_model_path(filename: str, configured: str | None = None) -> Path:
    """A dlib ``.dat`` file: ``configured`` when set, else the copy inside ``face_recognition_models``."""
    if configured not in (None, "", "auto"):
        path = Path(configured)
    else:
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise MissingWeightsError(
                f"dlib model {filename}",
                "face_recognition_models/models/" + filename,
                "Install it with `pip install face-recognition-models` (the Makefile does) "
                "or set the path in params.yaml.",
            )
        path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.exists():
        raise MissingWeightsError(
            f"dlib model {filename}",
            path,
            "Install face-recognition-models (`pip install face-recognition-models`) or set the path.",
        )
    return path


def face_from_head_box(box) -> np.ndarray:
    """Where a dlib face rectangle sits inside a full head box (hair included): a square of 0.75 x
    the head width, centred horizontally, its centre at 62 % of the height (the landmark extent of
    near-frontal procedural heads spans 12-77 % of the width and 33-94 % of the height)."""
    x1, y1, x2, y2 = (float(v) for v in np.asarray(box).reshape(4))
    w, h = x2 - x1, y2 - y1
    side = 0.75 * min(w, h)
    cx, cy = (x1 + x2) / 2, y1 + 0.62 * h
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


class DlibLandmarks:
    """68 landmarks per head box with dlib (see the module docstring, steps 1-2)."""

    def __init__(self, predictor_path: str | None = None, upsample_below: int = 300):
        import dlib

        self.predictor = dlib.shape_predictor(str(dlib_model_path(PREDICTOR_68, predictor_path)))
        self.detector = dlib.get_frontal_face_detector()
        self.upsample_below = int(upsample_below)

    def _face_rect(self, gray: np.ndarray, box: np.ndarray, ext: np.ndarray) -> tuple[np.ndarray, str]:
        from ..core.boxes import iou_matrix

        x1, y1, x2, y2 = (int(v) for v in ext)
        patch = gray[y1:y2, x1:x2]
        if patch.shape[0] >= 16 and patch.shape[1] >= 16:
            upsample = 1 if max(patch.shape) < self.upsample_below else 0
            found = [
                np.array([r.left() + x1, r.top() + y1, r.right() + x1, r.bottom() + y1], dtype=np.float64)
                for r in self.detector(np.ascontiguousarray(patch), upsample)
            ]
            inside = [
                f for f in found if box[0] <= (f[0] + f[2]) / 2 <= box[2] and box[1] <= (f[1] + f[3]) / 2 <= box[3]
            ]
            if inside:
                ious = iou_matrix(np.asarray(inside), box[None])[:, 0]
                return inside[int(np.argmax(ious))], "hog"
        return face_from_head_box(box), "head_box"

    def __call__(self, image: np.ndarray, boxes: np.ndarray, extended: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """-> ((N, 68, 2) pixels, per head "hog" or "head_box": where its face rectangle came from)."""
        import cv2
        import dlib

        gray = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
        points = np.full((len(boxes), 68, 2), np.nan)
        sources = []
        for i, (box, ext) in enumerate(zip(np.asarray(boxes, dtype=np.float64), extended)):
            rect, source = self._face_rect(gray, box, ext)
            r = dlib.rectangle(int(round(rect[0])), int(round(rect[1])), int(round(rect[2])), int(round(rect[3])))
            shape = self.predictor(gray, r)
            points[i] = [(shape.part(k).x, shape.part(k).y) for k in range(68)]
            sources.append(source)
        return points, sources


class LandmarkFitLabeller:
    """dlib 68 landmarks + batched 3DMM fitting with priors.

    Example::

        labeller = LandmarkFitLabeller(load_head_model("data/headmodel/head_model.npz"), n_shape=20, n_expr=10)
        labels = labeller(image, sample_id, boxes, extended)
    """

    name = "landmark-fit"

    def __init__(
        self,
        head_model,
        n_shape: int = 20,
        n_expr: int = 10,
        prior_weight: float = 1.0,
        contour_weight: float = 0.5,
        predictor: str | None = None,
        outer_iters: int = 4,
    ):
        from ..core.fitting import LandmarkModel

        self.landmarks = DlibLandmarks(predictor)
        self.model = LandmarkModel.from_head_model(head_model, n_shape=n_shape, n_expr=n_expr)
        self.prior_weight = float(prior_weight)
        self.outer_iters = int(outer_iters)
        self.weights = np.ones(68)
        self.weights[CONTOUR] = float(contour_weight)
        self.face_sources: dict[str, int] = {"hog": 0, "head_box": 0}

    def fit(self, points: np.ndarray) -> np.ndarray:
        """(N, 68, 2) pixels -> (N, 413) image-pixel parameters (jaw 0, depth translation 0)."""
        from ..core.fitting import fit_landmarks

        if len(points) == 0:
            return np.zeros((0, 413), dtype=np.float32)
        fit = fit_landmarks(
            points, self.model, weights=self.weights, prior_weight=self.prior_weight, outer_iters=self.outer_iters
        )
        return fit.flame_params(self.model).astype(np.float32)

    def __call__(self, image: np.ndarray, sample_id: str, boxes: np.ndarray, extended: np.ndarray) -> HeadLabels:
        n = len(boxes)
        labels = HeadLabels.empty(n, "fit_failed")
        if n == 0:
            return labels
        points, sources = self.landmarks(image, boxes, extended)
        for s in sources:
            self.face_sources[s] = self.face_sources.get(s, 0) + 1
        params = self.fit(points)
        ok = np.isfinite(params).all(axis=1)
        labels.params[ok] = params[ok]
        labels.ok = ok
        labels.reasons = ["" if k else "fit_failed" for k in ok]
        return labels


def refine_labels(labels: HeadLabels, points: np.ndarray, fitter: LandmarkFitLabeller, layer) -> tuple[HeadLabels, int]:
    """Refine a labeller's parameters with a fit to observed 68 landmarks ``points`` (N, 68, 2).

    The fitted pose (rotation, scale, x/y translation) and fitted shape/expression components
    replace the labeller's where the fit's landmarks lie closer to the observed points than the
    labeller's own (the other components, jaw and depth are kept). Returns (labels, heads changed).
    """
    from .base import decode_labels

    idx = np.flatnonzero(labels.ok)
    if len(idx) == 0:
        return labels, 0
    fitted = fitter.fit(points[idx])
    before = decode_labels(labels.params[idx], layer).landmarks[..., :2]
    merged = labels.params[idx].copy()
    comps = fitter.model.components
    merged[:, comps] = fitted[:, comps]
    pose = slice(ROT6D.start, TRANSLATION.start + 2)  # rotation and the x, y translation
    merged[:, pose] = fitted[:, pose]
    merged[:, SCALE_INDEX] = fitted[:, SCALE_INDEX]
    after = decode_labels(merged, layer).landmarks[..., :2]
    err = lambda lm: np.nanmean(np.linalg.norm(lm - points[idx], axis=-1), axis=1)
    better = err(after) < err(before)
    labels.params[idx[better]] = merged[better]
    return labels, int(better.sum())
