"""Fitting a landmark model to 68 image points: pose, scale, translation and coefficients."""

from __future__ import annotations

import numpy as np
import pytest

from vggheads.core.fitting import LandmarkModel, fit_landmarks
from vggheads.geometry.rotations import angles_to_matrix


def _model(k=5, seed=0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(0, 0.05, (68, 3))
    return LandmarkModel(mean, rng.normal(0, 0.01, (k, 68, 3)), np.arange(k))


def _project(model, yaw, pitch, roll, coeffs, s, t):
    R = angles_to_matrix(yaw, pitch, roll)
    X = model.points(coeffs)
    return s[:, None, None] * np.einsum("bij,blj->bli", R, X)[..., :2] + t[:, None]


def test_recovers_pose_scale_translation_and_coefficients():
    model = _model()
    rng = np.random.default_rng(1)
    B = 8
    yaw, pitch, roll = rng.uniform(-60, 60, B), rng.uniform(-30, 30, B), rng.uniform(-30, 30, B)
    coeffs = rng.normal(0, 1, (B, 5))
    s, t = rng.uniform(800, 3000, B), rng.uniform(100, 500, (B, 2))
    points = _project(model, yaw, pitch, roll, coeffs, s, t)
    fit = fit_landmarks(points, model, prior_weight=1e-6, outer_iters=10)
    np.testing.assert_allclose(fit.yaw, yaw, atol=1e-3)
    np.testing.assert_allclose(fit.pitch, pitch, atol=1e-3)
    np.testing.assert_allclose(fit.roll, roll, atol=1e-3)
    np.testing.assert_allclose(fit.scale, s, rtol=1e-5)
    np.testing.assert_allclose(fit.translation, t, atol=1e-3)
    np.testing.assert_allclose(fit.coeffs, coeffs, atol=1e-2)
    assert fit.rms.max() < 1e-3
    # R is the paper's rotation; the 413-vector carries it as 6D, with scale and translation
    params = fit.flame_params(model)
    np.testing.assert_allclose(params[:, 403:406], fit.R[:, :, 0])
    np.testing.assert_allclose(params[:, :5], fit.coeffs)
    assert (params[:, 412] == fit.scale).all()


def test_rigid_fit_with_noise_and_missing_points():
    model = LandmarkModel(_model().mean, np.zeros((0, 68, 3)), np.zeros(0, dtype=np.int64))
    rng = np.random.default_rng(2)
    yaw, pitch, roll = np.array([35.0]), np.array([-12.0]), np.array([8.0])
    points = _project(model, yaw, pitch, roll, None, np.array([2000.0]), np.array([[320.0, 240.0]]))
    points = points + rng.normal(0, 0.5, points.shape)
    points[0, :10] = np.nan  # e.g. occluded contour points
    fit = fit_landmarks(points, model)
    assert abs(fit.yaw[0] - 35.0) < 1.0 and abs(fit.pitch[0] + 12.0) < 1.0 and abs(fit.roll[0] - 8.0) < 1.0
    assert 0.3 < fit.rms[0] < 1.0  # the noise level, in pixels


def test_prior_shrinks_coefficients():
    model = _model()
    rng = np.random.default_rng(3)
    coeffs = rng.normal(0, 2, (1, 5))
    points = _project(model, np.zeros(1), np.zeros(1), np.zeros(1), coeffs, np.array([1000.0]), np.zeros((1, 2)))
    loose = fit_landmarks(points, model, prior_weight=1e-6).coeffs
    tight = fit_landmarks(points, model, prior_weight=10.0).coeffs
    assert np.linalg.norm(tight) < 0.5 * np.linalg.norm(loose)


def test_rejects_wrong_point_count():
    with pytest.raises(ValueError, match="68"):
        fit_landmarks(np.zeros((1, 5, 2)), _model())
