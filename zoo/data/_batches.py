"""Deterministic, resumable mini-batch iteration over in-memory arrays."""

from collections.abc import Iterator

import numpy as np
import torch


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of batches ``iterate_batches`` yields per epoch for ``n`` items."""
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_batches(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    start_batch: int = 0,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x_batch float32 (B, ...), y_batch int64 (B,))`` over ``x`` (N, ...) and ``y`` (N,).

    With ``shuffle`` the order is a permutation derived only from ``(seed, epoch)`` (both >= 0), so a run
    resumed at epoch k sees the same order; ``start_batch`` skips the batches already done in
    that epoch. ``drop_last`` drops a final batch smaller than ``batch_size``.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} items but y has {len(y)}")
    if batch_size < 1 or start_batch < 0:
        raise ValueError(f"need batch_size >= 1 and start_batch >= 0, got {batch_size}, {start_batch}")
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    n = len(x)
    order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(n)) if shuffle else torch.arange(n)
    for b in range(start_batch, num_batches(n, batch_size, drop_last)):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield x[idx.to(x.device)].float(), y[idx.to(y.device)].long()
