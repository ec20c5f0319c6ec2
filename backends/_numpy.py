"""The numpy reference backend (float64 by default): exact, simple, torch-free."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._protocol import Array, Backend


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def is_array(self, x: object) -> bool:
        return isinstance(x, np.ndarray)

    def asarray(self, data: Any, like: Array) -> Array:
        return np.asarray(data, dtype=like.dtype)

    def zeros(self, shape: Sequence[int], like: Array) -> Array:
        return np.zeros(tuple(shape), dtype=like.dtype)

    def conv2d(self, x: Array, w: Array, stride: int, padding: int) -> Array:
        k = w.shape[-1]
        xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        cols = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
        return np.einsum("nchwij,ocij->nohw", cols, w, optimize=True)

    def conv2d_adjoint(self, g: Array, w: Array, stride: int, padding: int,
                       in_hw: tuple[int, int]) -> Array:
        n, _, ho, wo = g.shape
        k = w.shape[-1]
        h, wd = in_hw
        cols = np.einsum("nohw,ocij->nchwij", g, w, optimize=True)
        out = np.zeros((n, w.shape[1], h + 2 * padding, wd + 2 * padding), dtype=g.dtype)
        for i in range(k):  # k² shifted adds: the transpose of the sliding-window gather
            for j in range(k):
                out[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += cols[..., i, j]
        return out[:, :, padding:padding + h, padding:padding + wd]

    def argmax(self, x: Array, axis: int) -> Array:
        return np.argmax(x, axis=axis)

    def argmin(self, x: Array, axis: int) -> Array:
        return np.argmin(x, axis=axis)

    def take_along_axis(self, x: Array, idx: Array, axis: int) -> Array:
        return np.take_along_axis(x, idx, axis=axis)

    def one_hot(self, idx: Array, n: int, like: Array) -> Array:
        return (idx[..., None] == np.arange(n)).astype(like.dtype)

    def sign(self, x: Array) -> Array:
        return np.sign(x).astype(np.int8)

    def to_float(self, x: Array, like: Array) -> Array:
        return np.asarray(x, dtype=like.dtype)

    def logsumexp(self, x: Array, axis: int) -> Array:
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))

    def rng(self, seed: int, like: Array) -> np.random.Generator:
        return np.random.default_rng(seed)

    def normal(self, rng: np.random.Generator, shape: Sequence[int], like: Array) -> Array:
        return rng.standard_normal(tuple(shape)).astype(like.dtype)

    def uniform(self, rng: np.random.Generator, shape: Sequence[int], like: Array) -> Array:
        return rng.random(tuple(shape)).astype(like.dtype)
