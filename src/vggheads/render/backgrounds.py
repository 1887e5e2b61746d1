"""Random backgrounds for the procedural renderer: gradients, smooth noise, a wall with a floor, and
random shapes; deterministic given the generator. Images are (H, W, 3) uint8 RGB."""

from __future__ import annotations

import numpy as np

KINDS = ("gradient", "noise", "room", "shapes")


def _color(rng: np.random.Generator, lo: float = 0.05, hi: float = 0.95) -> np.ndarray:
    """A random colour, biased away from fully saturated primaries: HSV with moderate saturation."""
    import colorsys

    h = rng.random()
    s = rng.uniform(0.1, 0.7)
    v = rng.uniform(lo, hi)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a random ``cells`` x ``cells`` grid upsampled bicubically."""
    import cv2

    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _gradient(rng, height, width) -> np.ndarray:
    c0, c1 = _color(rng), _color(rng)
    ang = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < 0.3:  # radial
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        t = np.hypot(xs - cx, ys - cy) / np.hypot(width, height)
    else:
        t = (xs * np.cos(ang) + ys * np.sin(ang)) / (abs(width * np.cos(ang)) + abs(height * np.sin(ang)) + 1e-6)
        t = t - t.min()
    t = np.clip(t / max(t.max(), 1e-6), 0, 1)[..., None]
    return c0 * (1 - t) + c1 * t


def _noise(rng, height, width) -> np.ndarray:
    c0, c1 = _color(rng), _color(rng)
    n = 0.6 * _smooth_noise(rng, height, width, int(rng.integers(2, 6)))
    n += 0.3 * _smooth_noise(rng, height, width, int(rng.integers(8, 20)))
    n += 0.1 * _smooth_noise(rng, height, width, int(rng.integers(30, 60)))
    n = n[..., None]
    return c0 * (1 - n) + c1 * n


def _room(rng, height, width) -> np.ndarray:
    wall, floor = _color(rng, 0.3, 0.95), _color(rng, 0.1, 0.7)
    horizon = rng.uniform(0.45, 0.85) * height
    ys = np.arange(height, dtype=np.float32)[:, None, None]
    img = np.where(ys < horizon, wall, floor) * np.ones((1, width, 1))
    # light falloff on the wall, perspective darkening on the floor
    shade = 1.0 - 0.25 * _smooth_noise(rng, height, width, 3)[..., None]
    img = img * shade
    if rng.random() < 0.5:  # vertical panels / a door / a window
        import cv2

        for _ in range(int(rng.integers(1, 4))):
            x0 = int(rng.uniform(0, width))
            w = int(rng.uniform(0.05, 0.3) * width)
            y0 = int(rng.uniform(0.05, 0.4) * height)
            y1 = int(min(horizon, y0 + rng.uniform(0.2, 0.6) * height))
            col = tuple(float(c) for c in _color(rng, 0.2, 1.0))
            cv2.rectangle(img, (x0, y0), (x0 + w, y1), col, -1)
            cv2.rectangle(img, (x0, y0), (x0 + w, y1), tuple(c * 0.6 for c in col), max(2, width // 200))
    return img


def _shapes(rng, height, width) -> np.ndarray:
    import cv2

    img = np.ascontiguousarray(_gradient(rng, height, width) if rng.random() < 0.5 else _noise(rng, height, width))
    for _ in range(int(rng.integers(4, 16))):
        col = tuple(float(c) for c in _color(rng))
        kind = rng.integers(0, 4)
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        size = int(rng.uniform(0.03, 0.3) * max(width, height))
        if kind == 0:
            cv2.circle(img, (x, y), size, col, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (x, y), (x + size, y + int(size * rng.uniform(0.3, 2))), col, -1)
        elif kind == 2:
            x2, y2 = int(rng.uniform(0, width)), int(rng.uniform(0, height))
            cv2.line(img, (x, y), (x2, y2), col, max(1, size // 10), cv2.LINE_AA)
        else:
            pts = np.array([[x + rng.uniform(-size, size), y + rng.uniform(-size, size)] for _ in range(3)], np.int32)
            cv2.fillConvexPoly(img, pts, col, cv2.LINE_AA)
    return img


def background(
    rng: np.random.Generator,
    height: int,
    width: int,
    kinds: tuple[str, ...] = KINDS,
    blur: float = 0.0,
    noise: float = 0.02,
) -> np.ndarray:
    """A random background of one of ``kinds``, optionally blurred (sigma as a fraction of the width)."""
    import cv2

    kind = kinds[int(rng.integers(0, len(kinds)))]
    img = {"gradient": _gradient, "noise": _noise, "room": _room, "shapes": _shapes}[kind](rng, height, width)
    img = np.asarray(img, dtype=np.float32)
    if blur > 0:
        sigma = float(rng.uniform(0, blur)) * width
        if sigma > 0.5:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
    if noise > 0:
        img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
