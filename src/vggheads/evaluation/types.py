"""The predictor interface every evaluated system implements, and what an evaluation returns.

Frames and units: boxes are ``[x1, y1, x2, y2]`` in image pixels; 2D points are ``(x, y)``
pixels; 3D points are image-aligned (x right, y down in pixels, z away from the camera); angles
are degrees in the paper's yaw/pitch/roll convention (:func:`vggheads.geometry.matrix_to_angles`,
which is also AFLW2000-3D's ``Pose_Para`` convention); ``rotation`` is the paper's R (head model
frame -> image frame, a frontal face is ``diag(1, -1, -1)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class HeadPrediction:
    """One detected head. Only ``box`` and ``score`` are required; a benchmark that needs a missing
    field (e.g. pose on AFLW2000) reports the system as unable to take part instead of guessing.

    Example::

        HeadPrediction(box=np.array([10, 20, 110, 140.]), score=0.9, angles=(12.0, -3.0, 1.5))
    """

    box: np.ndarray  # (4,) xyxy pixels: the head box (a face box for face detectors)
    score: float
    landmarks: np.ndarray | None = None  # (68, 2) pixels, iBUG order
    landmarks_3d: np.ndarray | None = None  # (68, 3) image-aligned pixels + depth
    rotation: np.ndarray | None = None  # (3, 3) the paper's R
    angles: tuple[float, float, float] | None = None  # (yaw, pitch, roll) degrees
    flame_params: np.ndarray | None = None  # (413,) the paper's parameter order
    vertices: np.ndarray | None = None  # (V, 3) image-aligned pixels + depth, head model topology
    face_box: np.ndarray | None = None  # (4,) xyxy: box of the face vertices, if the system has one

    def __post_init__(self):
        self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
        self.score = float(self.score)
        for name, shape in (
            ("landmarks", (68, 2)),
            ("landmarks_3d", (68, 3)),
            ("rotation", (3, 3)),
            ("face_box", (4,)),
        ):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != shape:
                    raise ValueError(f"HeadPrediction.{name}: expected shape {shape}, got {value.shape}")
                setattr(self, name, value)

    def pose(self) -> tuple[float, float, float] | None:
        """(yaw, pitch, roll) degrees from ``angles``, else from ``rotation``; None if neither is set."""
        if self.angles is not None:
            return tuple(float(a) for a in self.angles)
        if self.rotation is not None:
            from ..geometry.rotations import matrix_to_angles

            yaw, pitch, roll = matrix_to_angles(self.rotation)
            return float(yaw), float(pitch), float(roll)
        return None

    def rotation_matrix(self) -> np.ndarray | None:
        """The paper's R from ``rotation``, else from ``angles``; None if neither is set."""
        if self.rotation is not None:
            return self.rotation
        if self.angles is not None:
            from ..geometry.rotations import angles_to_matrix

            yaw, pitch, roll = self.angles
            return np.asarray(angles_to_matrix(yaw, pitch, roll), dtype=np.float64)
        return None


# A system under evaluation: RGB image (H, W, 3) uint8 -> every head it finds.
Predictor = Callable[[np.ndarray], list[HeadPrediction]]


@dataclass
class BenchmarkResult:
    """What one benchmark run produces.

    ``metrics``: flat name -> number (the DVC metrics file, MLflow metrics); ``protocol``: name ->
    str, the variant used (subset, convention, matching rule, ...), logged next to the numbers;
    ``records``: one dict per scored item (image or head) with its errors, for histograms;
    ``curves``: name -> dict of equal-length columns (PR curves, ROC), for DVC plots.
    """

    benchmark: str
    system: str
    metrics: dict[str, float] = field(default_factory=dict)
    protocol: dict[str, str] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)
    curves: dict[str, dict[str, list]] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"benchmark": self.benchmark, "system": self.system, "metrics": self.metrics, "protocol": self.protocol}
