"""Contrast, brightness and fog on one image ``x`` (H, W, C) float64 in [0, 1] (CIFAR-10-C).

Requirements: numpy only; ``rng`` has numpy's ``uniform`` (Generator or legacy RandomState).
"""
from __future__ import annotations

import numpy as np


def contrast(x: np.ndarray, c: float, rng=None) -> np.ndarray:
    """``clip((x − m)·c + m, 0, 1)`` with ``m`` the mean of each channel over the image."""
    m = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - m) * c + m, 0, 1)


def brightness(x: np.ndarray, c: float, rng=None) -> np.ndarray:
    """Add ``c`` to the value V = max over channels of HSV, keeping hue and saturation, V
    clipped to [0, 1]. Every RGB component is V·(1 − S·f(H)), so the new image is
    ``x · V'/V`` (and ``V'`` gray where V = 0); for one channel this is ``clip(x + c, 0, 1)``."""
    v = x.max(axis=-1, keepdims=True)
    v_new = np.clip(v + c, 0, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(v > 0, x * (v_new / np.where(v > 0, v, 1)), v_new)
    return np.clip(out, 0, 1)


def plasma_fractal(size: int, decay: float, rng) -> np.ndarray:
    """A (size, size) diamond-square height map in [0, 1] (``size`` a power of 2): every new
    point is the mean of its 4 neighbours (periodic) plus U(−w, w)·w, with w = 100 divided by
    ``decay`` at every halving of the step."""
    if size & (size - 1):
        raise ValueError(f"plasma_fractal: size must be a power of 2, got {size}")
    m = np.empty((size, size), dtype=np.float64)
    m[0, 0] = 0
    step, wibble = size, 100.0

    def wibbled(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = m[0:size:step, 0:size:step]
        squares = corners + np.roll(corners, -1, axis=0)
        squares += np.roll(squares, -1, axis=1)
        m[half:size:step, half:size:step] = wibbled(squares)
        centres = m[half:size:step, half:size:step]
        corners = m[0:size:step, 0:size:step]
        m[0:size:step, half:size:step] = wibbled(centres + np.roll(centres, 1, axis=0)
                                                 + corners + np.roll(corners, -1, axis=1))
        m[half:size:step, 0:size:step] = wibbled(centres + np.roll(centres, 1, axis=1)
                                                 + corners + np.roll(corners, -1, axis=0))
        step //= 2
        wibble /= decay
    m -= m.min()
    return m / m.max()


def fog(x: np.ndarray, param: tuple[float, float], rng) -> np.ndarray:
    """``clip((x + a·F)·M / (M + a), 0, 1)`` with F a plasma fractal of the next power of 2
    ≥ max(H, W), cropped to H×W, and M = max(x) (the image's overall maximum)."""
    amount, decay = param
    h, w = x.shape[:2]
    size = 1 << (max(h, w) - 1).bit_length()
    peak = x.max()
    out = x + amount * plasma_fractal(size, decay, rng)[:h, :w, None]
    return np.clip(out * peak / (peak + amount), 0, 1)
