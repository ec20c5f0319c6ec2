"""Blur corruptions on one image ``x`` (H, W, C) float64 in [0, 1] (CIFAR-10-C's definitions).

Requirements: numpy and scipy only (no OpenCV, no scikit-image); OpenCV's default border,
reflect-101 (``dcb|abcd|cba``), is scipy's ``mode="mirror"``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def gaussian_blur(x: np.ndarray, sigma: float, rng=None) -> np.ndarray:
    """Gaussian filter of std ``σ`` px over H and W, edges replicated (``nearest``), kernel
    truncated at 4σ: ``skimage.filters.gaussian``'s defaults."""
    return np.clip(ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="nearest", truncate=4.0),
                   0, 1)


def _gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """OpenCV's ``getGaussianKernel(size, σ)`` for σ > 0: ``exp(−(i − (size−1)/2)² / 2σ²)``,
    normalised."""
    i = np.arange(size) - (size - 1) / 2
    taps = np.exp(-i ** 2 / (2 * sigma ** 2))
    return taps / taps.sum()


def disk(radius: float, alias_blur: float) -> np.ndarray:
    """The defocus kernel: the indicator of ``X² + Y² ≤ r²`` on a 17×17 grid (or
    (2r+1)² for r > 8), normalised to sum 1, then smoothed by a separable Gaussian of σ =
    ``alias_blur`` (3 taps, 5 for r > 8) with reflect-101 edges. float32, as in CIFAR-10-C."""
    half = 8 if radius <= 8 else int(radius)
    ksize = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    k = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float32)
    k /= k.sum()
    taps = _gaussian_taps(ksize, alias_blur)
    for axis in (0, 1):
        k = ndimage.correlate1d(k, taps, axis=axis, mode="mirror")
    return k.astype(np.float32)


def defocus_blur(x: np.ndarray, param: tuple[float, float], rng=None) -> np.ndarray:
    """Correlation of every channel with ``disk(radius, alias_blur)``, reflect-101 edges."""
    kernel = disk(*param).astype(np.float64)
    out = np.stack([ndimage.correlate(x[..., c], kernel, mode="mirror")
                    for c in range(x.shape[-1])], -1)
    return np.clip(out, 0, 1)


def _shift(x: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``x`` moved by (dx, dy) px, the uncovered border filled with the edge row/column."""
    h, w = x.shape[:2]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return x[rows][:, cols]


def motion_blur(x: np.ndarray, param: tuple[float, float], rng) -> np.ndarray:
    """A one-sided line blur: ``Σᵢ kᵢ · shift(x, −i·(cos θ, sin θ))`` over i = 0..2r, with
    ``kᵢ ∝ exp(−i² / 2σ²)`` and θ ~ U(−45°, 45°) (``imagecorruptions``' numpy version of
    ImageMagick's MotionBlurImage; offsets rounded as ``−ceil(i·cos θ − 1/2)``)."""
    radius, sigma = param
    angle = rng.uniform(-45, 45)
    width = int(2 * radius + 1)
    taps = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2)) / (math.sqrt(2 * math.pi) * sigma)
    taps /= taps.sum()
    py, px = width * math.sin(math.radians(angle)), width * math.cos(math.radians(angle))
    hyp = math.hypot(py, px)
    out = np.zeros_like(x)
    for i in range(width):
        dy, dx = -math.ceil(i * py / hyp - 0.5), -math.ceil(i * px / hyp - 0.5)
        if abs(dy) >= x.shape[0] or abs(dx) >= x.shape[1]:
            break
        out += taps[i] * _shift(x, dx, dy)
    return np.clip(out, 0, 1)


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """The central crop of side ``ceil(H / factor)`` zoomed by ``factor`` (bilinear,
    ``scipy.ndimage.zoom(order=1)``) and cut back to H×W around the centre."""
    h = x.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    z = ndimage.zoom(x[top:top + ch, top:top + ch], (factor, factor, 1), order=1)
    trim = (z.shape[0] - h) // 2
    return z[trim:trim + h, trim:trim + h]


def zoom_blur(x: np.ndarray, param: tuple[float, float, float], rng=None) -> np.ndarray:
    """Mean of ``x`` and its clipped zooms by ``arange(start, stop, step)`` (float32 sums, as
    CIFAR-10-C)."""
    x32 = x.astype(np.float32)
    out = np.zeros_like(x32)
    factors = np.arange(*param)
    for f in factors:
        out += clipped_zoom(x32, f)
    return np.clip((x32 + out) / (len(factors) + 1), 0, 1).astype(np.float64)
