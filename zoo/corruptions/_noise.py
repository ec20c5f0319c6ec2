"""Noise corruptions on one image ``x`` (H, W, C) float64 in [0, 1] (CIFAR-10-C's definitions).

Requirements: numpy only. ``rng`` is anything with numpy's ``normal`` / ``poisson`` / ``random``
(a ``Generator``, or a legacy ``RandomState`` to replay a reference implementation's draws);
every draw has the image's shape, in the reference implementations' order.
"""
from __future__ import annotations

import numpy as np


def gaussian_noise(x: np.ndarray, sigma: float, rng) -> np.ndarray:
    """``clip(x + n, 0, 1)``, ``n ~ N(0, σ²)`` per value."""
    return np.clip(x + rng.normal(size=x.shape, scale=sigma), 0, 1)


def shot_noise(x: np.ndarray, photons: float, rng) -> np.ndarray:
    """``clip(Poisson(c·x) / c, 0, 1)``: photon counting with ``c`` photons at full intensity."""
    return np.clip(rng.poisson(x * photons) / photons, 0, 1)


def impulse_noise(x: np.ndarray, amount: float, rng) -> np.ndarray:
    """Salt and pepper: each value is replaced with probability ``amount``, by 1 or 0 with
    probability 1/2 each (scikit-image's ``random_noise(mode="s&p")``)."""
    flipped = rng.random(x.shape) <= amount
    salted = rng.random(x.shape) <= 0.5
    out = x.copy()
    out[flipped & salted] = 1.0
    out[flipped & ~salted] = 0.0
    return out


def speckle_noise(x: np.ndarray, sigma: float, rng) -> np.ndarray:
    """``clip(x + x·n, 0, 1)``, ``n ~ N(0, σ²)`` per value (multiplicative noise)."""
    return np.clip(x + x * rng.normal(size=x.shape, scale=sigma), 0, 1)
