"""Seeded train/validation index split, so model selection never touches the test set."""

import numpy as np


def train_val_split(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into disjoint sorted int64 index arrays ``(train_idx, val_idx)``.

    ``val_idx`` has ``val_size`` entries drawn by a permutation seeded with ``seed``; the result
    depends only on ``(n, val_size, seed)``.
    """
    if not 0 <= val_size <= n:
        raise ValueError(f"val_size must be in [0, {n}], got {val_size}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])
