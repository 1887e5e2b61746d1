"""Procedural multi-person COCO-17 skeletons: a person count from the caption, varied body and head poses.

Each person is a small 3D stick figure (proportions of an adult, scaled), posed (body turn, arms,
legs, head yaw/pitch/roll), placed in the scene (larger = closer = lower in the frame) and projected
orthographically. Keypoints outside the canvas get confidence 0; those turned away from the
camera (the far ear or eye in a profile) get a low confidence, as a pose estimator would report.
Deterministic given the generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Body-frame joint positions for a person of height 1 standing upright, facing +z, left = +x, y up, feet at 0.
_REST = {
    "neck": (0.0, 0.82, 0.0),
    "left_shoulder": (0.125, 0.81, 0.0),
    "right_shoulder": (-0.125, 0.81, 0.0),
    "left_hip": (0.09, 0.52, 0.0),
    "right_hip": (-0.09, 0.52, 0.0),
}
UPPER_ARM, FOREARM, THIGH, SHIN = 0.17, 0.15, 0.245, 0.245
HEAD_CENTRE = 0.905  # height of the head centre
# Face points in the head frame (person height 1): eyes, nose, ears (a 0.13-tall head).
_FACE = {
    "nose": (0.0, -0.005, 0.06),
    "left_eye": (0.019, 0.012, 0.045),
    "right_eye": (-0.019, 0.012, 0.045),
    "left_ear": (0.046, 0.0, -0.005),
    "right_ear": (-0.046, 0.0, -0.005),
}


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@dataclass
class Person:
    keypoints: np.ndarray  # (17, 3) x, y, confidence in canvas pixels
    box: np.ndarray  # (4,) x1, y1, x2, y2 of the confident keypoints, padded
    head_yaw: float  # degrees, what the sampler used (informative only)
    head_pitch: float
    head_roll: float
    height_px: float


def _limb(start, direction_angles, length):
    """End point of a limb hanging from ``start``: direction from (swing about x, swing about z)."""
    swing_x, swing_z = direction_angles
    d = _rot_z(swing_z) @ _rot_x(swing_x) @ np.array([0.0, -1.0, 0.0])
    return np.asarray(start) + length * d


def sample_person(rng: np.random.Generator) -> tuple[dict, tuple[float, float, float], float]:
    """Joint positions (body frame, height 1) of one posed person; also the head angles and body yaw."""
    j = {k: np.array(v, dtype=float) for k, v in _REST.items()}
    arm_pose = rng.choice(["down", "bent", "raised", "akimbo"], p=[0.45, 0.3, 0.15, 0.1])
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        sh = j[f"{side}_shoulder"]
        if arm_pose == "down":
            up = (rng.normal(0, 0.2), sgn * rng.uniform(0.05, 0.35))
            lo = (up[0] + rng.normal(0, 0.15), up[1] + sgn * rng.uniform(-0.1, 0.2))
        elif arm_pose == "bent":
            up = (rng.uniform(-0.3, 0.3), sgn * rng.uniform(0.1, 0.5))
            lo = (rng.uniform(-1.8, -0.8), up[1] - sgn * rng.uniform(0.2, 0.9))
        elif arm_pose == "raised":
            up = (rng.normal(0, 0.3), sgn * rng.uniform(1.6, 2.6))
            lo = (up[0], up[1] + sgn * rng.uniform(-0.4, 0.4))
        else:
            up = (rng.normal(0, 0.1), sgn * rng.uniform(0.6, 0.9))
            lo = (0.0, -sgn * rng.uniform(0.6, 1.0))
        j[f"{side}_elbow"] = _limb(sh, up, UPPER_ARM)
        j[f"{side}_wrist"] = _limb(j[f"{side}_elbow"], lo, FOREARM)
    sitting = rng.random() < 0.2
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        hip = j[f"{side}_hip"]
        if sitting:
            j[f"{side}_knee"] = hip + THIGH * np.array([sgn * 0.15, -0.1, 0.98])
            j[f"{side}_ankle"] = j[f"{side}_knee"] + SHIN * np.array([0.0, -1.0, 0.05])
        else:
            stride = rng.normal(0, 0.25)
            j[f"{side}_knee"] = _limb(hip, (sgn * stride, sgn * rng.uniform(0.0, 0.12)), THIGH)
            j[f"{side}_ankle"] = _limb(j[f"{side}_knee"], (sgn * stride * 0.6 - abs(rng.normal(0, 0.1)), 0.0), SHIN)
    if sitting:  # lower the body so the feet stay on the ground
        drop = j["left_ankle"][1]
        for k in j:
            j[k] = j[k] - np.array([0.0, drop, 0.0])
    # Head: mostly towards the camera, sometimes in profile or looking up/down.
    yaw = float(np.clip(rng.normal(0, 35), -90, 90))
    pitch = float(np.clip(rng.normal(0, 12), -40, 40))
    roll = float(np.clip(rng.normal(0, 8), -30, 30))
    body_yaw = float(np.clip(yaw * rng.uniform(0.2, 0.8) + rng.normal(0, 10), -80, 80))
    head_rot = _rot_z(np.radians(-roll)) @ _rot_x(np.radians(-pitch)) @ _rot_y(np.radians(yaw - body_yaw))
    centre = j["neck"] + np.array([0.0, HEAD_CENTRE - _REST["neck"][1], 0.0]) + np.array([0.0, 0.0, 0.01])
    for name, p in _FACE.items():
        j[name] = centre + head_rot @ np.array(p)
    j["_head_forward"] = head_rot @ np.array([0.0, 0.0, 1.0])
    return j, (yaw, pitch, roll), body_yaw


def sample_scene(n_persons: int, width: int, height: int, rng: np.random.Generator) -> list[Person]:
    """Skeletons of ``n_persons`` people in a ``width`` x ``height`` canvas, back to front."""
    from .openpose import COCO_NAMES

    framing = rng.choice(["full", "knees", "waist"], p=[0.35, 0.35, 0.3])
    visible_fraction = {"full": 1.0, "knees": 0.72, "waist": 0.5}[framing]  # of the body height, from the top
    # Person heights in pixels: one person fills the frame; groups shrink.
    base = height / visible_fraction * rng.uniform(0.8, 0.95) / (1 + 0.1 * (n_persons - 1))
    slots = (np.arange(n_persons) + 0.5) / n_persons
    horizon = height * rng.uniform(0.12, 0.3)
    order = rng.permutation(n_persons)
    persons = []
    for idx in order:
        depth = rng.uniform(0.75, 1.15) if n_persons > 1 else 1.0
        h_px = base * depth
        joints, (yaw, pitch, roll), body_yaw = sample_person(rng)
        cx = width * np.clip(slots[idx] + rng.normal(0, 0.06 / n_persons), 0.05, 0.95)
        # A camera at eye level: every head near the horizon, whatever its distance.
        top = horizon - 0.09 * h_px + rng.normal(0, 0.03) * height
        rot = _rot_y(np.radians(body_yaw))
        kp = np.zeros((17, 3), dtype=np.float32)
        forward = rot @ joints["_head_forward"]
        for k, name in enumerate(COCO_NAMES):
            p = rot @ joints[name]
            x = cx + p[0] * h_px
            y = top + (1.0 - p[1]) * h_px
            conf = 0.9
            if name.endswith("ear"):
                # An ear hides behind the head once the face turns towards its side (a face turned
                # to the person's left, +x, shows the right ear and hides the left one).
                side = 1.0 if name.startswith("left") else -1.0
                conf = 0.9 if side * forward[0] < 0.35 else 0.05
            elif name.endswith("eye"):
                side = 1.0 if name.startswith("left") else -1.0
                conf = 0.9 if side * forward[0] < 0.8 else 0.1
            elif name == "nose" and forward[2] < -0.2:
                conf = 0.1
            if not (0 <= x < width and 0 <= y < height):
                conf = 0.0
            kp[k] = (x, y, conf)
        good = kp[kp[:, 2] > 0, :2]
        if len(good) < 3 or kp[0, 2] == 0:
            continue  # nobody to draw, or the head is out of the frame
        pad = 0.04 * h_px
        box = np.array(
            [
                max(0, good[:, 0].min() - pad),
                max(0, good[:, 1].min() - 2.2 * pad),
                min(width - 1, good[:, 0].max() + pad),
                min(height - 1, good[:, 1].max() + pad),
            ],
            dtype=np.float32,
        )
        persons.append(Person(kp, box, yaw, pitch, roll, h_px))
    # Back to front: smaller (farther) people first.
    persons.sort(key=lambda p: p.height_px)
    return persons
