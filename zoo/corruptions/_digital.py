"""Pixelate, JPEG, elastic transform and occlusion on one image ``x`` (H, W, C) float64 in
[0, 1] (CIFAR-10-C's definitions; occlusion is this project's).

Requirements: numpy, scipy and Pillow only; ``rng`` has numpy's ``uniform`` (and ``random``
for occlusion).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage


def pixelate(x: np.ndarray, c: float, rng=None) -> np.ndarray:
    """Box-filter down to ``int(c·W) × int(c·H)`` and box-filter back up (Pillow ``BOX``),
    per channel in 32-bit float (no 8-bit rounding)."""
    h, w = x.shape[:2]
    small = (int(w * c), int(h * c))
    out = []
    for ch in range(x.shape[-1]):
        img = Image.fromarray(x[..., ch].astype(np.float32), mode="F")
        out.append(np.asarray(img.resize(small, Image.BOX).resize((w, h), Image.BOX)))
    return np.clip(np.stack(out, -1).astype(np.float64), 0, 1)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] -> uint8 by rounding."""
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def jpeg_compression(x: np.ndarray, quality: int, rng=None) -> np.ndarray:
    """Pillow JPEG round trip at ``quality`` of the 8-bit image (RGB, or 8-bit gray for one
    channel)."""
    pixels = to_uint8(x)
    img = Image.fromarray(pixels[..., 0] if x.shape[-1] == 1 else pixels)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    out = np.asarray(Image.open(buf), dtype=np.float64) / 255
    return out.reshape(x.shape)


def _affine_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 matrix A with ``A · (x, y, 1)ᵀ = dst`` for the three points ``src`` (x, y)."""
    a = np.concatenate([src, np.ones((3, 1))], 1).astype(np.float64)
    return np.linalg.solve(a, dst.astype(np.float64)).T


def elastic_transform(x: np.ndarray, param: tuple[float, float, float], rng) -> np.ndarray:
    """CIFAR-10-C's elastic transform with ``(α, σ, a) × size``: first a random affine map
    that moves three points around the centre (± size/3) by U(−a, a) each (bilinear,
    reflect-101 edges), then a displacement field ``α · G_σ * U(−1, 1)`` per axis (Gaussian
    smoothing with reflected edges, truncated at 3σ) sampled bilinearly with reflected edges."""
    h, w = x.shape[:2]
    alpha, sigma, affine = (v * h for v in param)
    centre = np.float32((h, w)) // 2
    third = min(h, w) // 3
    src = np.float32([centre + third, [centre[0] + third, centre[1] - third], centre - third])
    dst = src + rng.uniform(-affine, affine, size=src.shape).astype(np.float32)
    # the matrix maps source (x, y) to destination; sample each output pixel at its inverse
    fwd = np.vstack([_affine_matrix(src, dst), [0, 0, 1]])
    inv = np.linalg.inv(fwd)
    # scipy works in (row, col) = (y, x): swap the axes of the inverse map
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    m = swap @ inv @ swap
    warped = np.stack([ndimage.affine_transform(x[..., c].astype(np.float32), m[:2, :2],
                                                offset=m[:2, 2], order=1, mode="mirror")
                       for c in range(x.shape[-1])], -1)
    smooth = dict(sigma=sigma, mode="reflect", truncate=3.0)
    dx = (ndimage.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), **smooth) * alpha) \
        .astype(np.float32)
    dy = (ndimage.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), **smooth) * alpha) \
        .astype(np.float32)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = np.stack([yy + dy, xx + dx])
    out = np.stack([ndimage.map_coordinates(warped[..., c], coords, order=1, mode="reflect")
                    for c in range(x.shape[-1])], -1)
    return np.clip(out.astype(np.float64), 0, 1)


def occlusion(x: np.ndarray, side: float, rng) -> np.ndarray:
    """One mid-gray (0.5) square of side ``round(side · min(H, W))`` px at a uniformly random
    position inside the image (its top-left corner at ``floor(u · (H − s + 1))``, u ~ U(0, 1),
    per axis)."""
    h, w = x.shape[:2]
    s = int(round(side * min(h, w)))
    u = rng.random(2)
    top, left = int(u[0] * (h - s + 1)), int(u[1] * (w - s + 1))
    out = x.copy()
    out[top:top + s, left:left + s] = 0.5
    return out
