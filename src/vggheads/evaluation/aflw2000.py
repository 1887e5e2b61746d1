"""AFLW2000-3D: reader of the ``.jpg`` + ``.mat`` pairs, head pose MAE and 68-landmark NME.

Ground truth per image (``.mat``): ``Pose_Para`` (1, 7) = pitch, yaw, roll in radians, then
translation and scale; ``pt3d_68`` (3, 68) = the 68 landmarks in image pixels (x, y) plus depth;
``pt2d`` (2, N) and ``roi`` are kept but unused.

Protocol (the VGGHeads code, FSA-Net's filter):

* images with any ``Pose_Para`` angle beyond +-99 degrees are left out (1,969 of 2,000 remain on
  the full set); the number left out is reported;
* GT box = extent of ``pt3d_68`` (x, y); detections scoring >= 0.5 are kept (>= 0.1 if none), and
  the one whose face box (else box) has the highest IoU with the GT box is scored;
* a predicted pose with any |angle| > 135 degrees counts as (0, 0, 0) (the VGGHeads code's rule,
  switchable); errors are wrapped to [0, 180]; MAE is the mean of yaw, pitch and roll MAE;
* images where the system finds nothing are counted (``missed``) and not averaged, as in the code;
* NME (systems that give 68 landmarks) = mean L2 to ``pt3d_68[:2]`` / sqrt(w h) of the GT box, in
  percent; ``nme_balanced_pct`` averages the |yaw| bins [0, 30), [30, 60), [60, 90] (3DDFA's protocol).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .angles import aflw_pose_para_angles, paper_large_angle_rule, pose_mae, wrapped_error
from ..core.boxes import points_box
from ..core.metrics import NME_KEY, box_norm, nme
from .selection import select_by_iou, with_score_fallback
from ..core.images import load_rgb
from .types import BenchmarkResult, Predictor

log = logging.getLogger(__name__)

MAX_ANGLE = 99.0
YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))


@dataclass
class AflwSample:
    name: str
    image_path: Path
    yaw: float  # degrees, from Pose_Para
    pitch: float
    roll: float
    landmarks: np.ndarray  # (68, 3) pt3d_68 transposed: x, y pixels, depth
    pose_para: np.ndarray  # (7,)

    @property
    def angles(self) -> tuple[float, float, float]:
        return self.yaw, self.pitch, self.roll

    @property
    def box(self) -> np.ndarray:
        return points_box(self.landmarks[:, :2])


def read_sample(mat_path: str | Path) -> AflwSample:
    """One ``.mat`` (and the ``.jpg`` beside it)."""
    from scipy.io import loadmat

    mat_path = Path(mat_path)
    try:
        mat = loadmat(mat_path)
    except Exception as exc:  # scipy raises several types for a corrupt file
        raise InputError(f"{mat_path}: not a readable MATLAB file ({exc})") from None
    for key in ("Pose_Para", "pt3d_68"):
        if key not in mat:
            raise InputError(f"{mat_path}: field '{key}' missing (AFLW2000-3D .mat files have Pose_Para and pt3d_68)")
    pose = np.asarray(mat["Pose_Para"], dtype=np.float64).reshape(-1)
    if pose.size < 3:
        raise InputError(
            f"{mat_path}: field 'Pose_Para' has {pose.size} values, expected 7 (pitch, yaw, roll, tx, ty, tz, scale)"
        )
    pts = np.asarray(mat["pt3d_68"], dtype=np.float64)
    if pts.shape != (3, 68):
        raise InputError(f"{mat_path}: field 'pt3d_68' has shape {pts.shape}, expected (3, 68)")
    image = mat_path.with_suffix(".jpg")
    if not image.exists():
        raise InputError(f"{mat_path}: its image {image.name} is missing")
    yaw, pitch, roll = aflw_pose_para_angles(pose)
    return AflwSample(mat_path.stem, image, yaw, pitch, roll, pts.T.copy(), pose)


def read_aflw2000(root: str | Path, max_angle: float | None = MAX_ANGLE) -> tuple[list[AflwSample], int]:
    """All samples under ``root`` (sorted by name) -> (kept samples, number left out by the +-99 filter)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: AFLW2000-3D folder not found")
    mats = sorted(root.glob("*.mat"))
    if not mats:
        raise InputError(f"{root}: no .mat files (expected AFLW2000-3D image*.jpg + image*.mat pairs)")
    samples = [read_sample(m) for m in mats]
    if max_angle is None:
        return samples, 0
    kept = [s for s in samples if max(abs(s.yaw), abs(s.pitch), abs(s.roll)) <= max_angle]
    return kept, len(samples) - len(kept)


def evaluate_aflw2000(
    samples: list[AflwSample],
    predictor: Predictor,
    system: str = "model",
    filtered: int = 0,
    min_score: float | None = 0.5,
    fallback_score: float | None = 0.1,
    large_angle_rule: bool = True,
    progress: bool = True,
) -> BenchmarkResult:
    """Pose MAE (and NME when the system gives landmarks) on ``samples``."""
    from tqdm import tqdm

    pred_pose, gt_pose, nmes, yaws = [], [], [], []
    records = []
    missed = no_pose = 0
    for s in tqdm(samples, desc="aflw2000", disable=not progress):
        heads = with_score_fallback(predictor(load_rgb(s.image_path)), min_score, fallback_score)
        head = select_by_iou(heads, s.box)
        rec = {"image": s.name, "yaw_gt": s.yaw, "pitch_gt": s.pitch, "roll_gt": s.roll, "detected": head is not None}
        if head is None:
            missed += 1
            records.append(rec)
            continue
        pose = head.pose()
        if pose is None:
            no_pose += 1
        else:
            if large_angle_rule:
                pose = paper_large_angle_rule(*pose)
            pred_pose.append(pose)
            gt_pose.append(s.angles)
            err = wrapped_error(pose, s.angles)
            rec.update(
                yaw=pose[0],
                pitch=pose[1],
                roll=pose[2],
                err_yaw=err[0],
                err_pitch=err[1],
                err_roll=err[2],
                err_mean_deg=float(err.mean()),
            )
        if head.landmarks is not None:
            value = nme(head.landmarks, s.landmarks[:, :2], box_norm(s.box))
            nmes.append(value)
            yaws.append(abs(s.yaw))
            rec[NME_KEY] = value
        records.append(rec)
    result = BenchmarkResult("aflw2000", system, records=records)
    m = result.metrics
    m.update(images=len(samples), filtered=filtered, missed=missed)
    if pred_pose:
        mae = pose_mae(pred_pose, gt_pose)
        m.update(mae, scored_pose=len(pred_pose))
    if nmes:
        m[NME_KEY] = float(np.mean(nmes))
        bins = []
        for lo, hi in YAW_BINS:
            sel = [v for v, y in zip(nmes, yaws) if lo <= y < hi or (hi == 90.0 and y == 90.0)]
            if sel:
                m[f"nme_yaw_{int(lo)}_{int(hi)}_pct"] = float(np.mean(sel))
                bins.append(float(np.mean(sel)))
        m["nme_balanced_pct"] = float(np.mean(bins))
        m["scored_landmarks"] = len(nmes)
    if no_pose and not pred_pose:
        log.warning("%s gives no head pose: AFLW2000 pose MAE not computed", system)
    result.protocol = {
        "filter": f"Pose_Para angles within +-{MAX_ANGLE:g} deg ({filtered} left out)",
        "angles": "Pose_Para (pitch, yaw, roll) radians = the paper's yaw/pitch/roll convention",
        "selection": (
            f"score >= {min_score} ({fallback_score} if none), " if min_score is not None else "every detection, "
        )
        + "then max IoU of the face box with the pt3d_68 extent",
        "large_angle_rule": "prediction with |angle| > 135 counts as 0,0,0" if large_angle_rule else "off",
        "missed": "images without a detection are counted, not averaged",
        "nme": "68 points vs pt3d_68[:2], / sqrt(w h) of the pt3d_68 box, percent",
        "images": f"{len(samples)} images after the filter",
    }
    return result
