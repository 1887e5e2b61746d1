"""Signed-distance primitives (numpy, points ``(N, 3)`` -> distances ``(N,)``; negative inside)."""

from __future__ import annotations

import numpy as np


def sphere(p: np.ndarray, c, r: float) -> np.ndarray:
    return np.linalg.norm(p - np.asarray(c), axis=-1) - r


def ellipsoid(p: np.ndarray, c, radii) -> np.ndarray:
    """Approximate distance to an ellipsoid (exact on the surface, good near it)."""
    q = (p - np.asarray(c)) / np.asarray(radii)
    k0 = np.linalg.norm(q, axis=-1)
    k1 = np.linalg.norm(q / np.asarray(radii), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def round_cone(p: np.ndarray, a, b, ra: float, rb: float) -> np.ndarray:
    """A capsule whose radius goes linearly from ``ra`` at ``a`` to ``rb`` at ``b`` (approximate)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=-1) - (ra + (rb - ra) * t)


def capsule(p: np.ndarray, a, b, r: float) -> np.ndarray:
    return round_cone(p, a, b, r, r)


def smooth_union(d1: np.ndarray, d2: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: blends the two surfaces over a width ``k``."""
    h = np.clip(0.5 + 0.5 * (d2 - d1) / k, 0.0, 1.0)
    return d2 * (1.0 - h) + d1 * h - k * h * (1.0 - h)


def smooth_subtract(d: np.ndarray, cut: np.ndarray, k: float) -> np.ndarray:
    """Remove the solid ``cut`` from ``d`` with a rounded edge of width ``k``."""
    return -smooth_union(-d, cut, k)
