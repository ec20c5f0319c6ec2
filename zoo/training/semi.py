"""Semi-supervised training data: which training images keep their labels (``keep_labels``)
and batches that hold a fixed number of labelled images beside unlabelled ones
(``mixed_batches``).

With 100 labels per class among 55,000 training images, a uniformly drawn batch of 64 holds
~1.2 labelled images, so the labelled term sees almost no data. ``dgm train --labelled-batch L``
draws every batch as L labelled images + (batch size − L) unlabelled ones (the usual
semi-supervised protocol, e.g. Kingma et al. 2014): an epoch is one pass over the unlabelled
images, and the labelled images are cycled through seeded permutations (one per pass over
them). L = the batch size trains on the labelled images alone (the labels-only baseline; an
epoch is one pass over them).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from zoo.data import iterate_batches, num_batches


def keep_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """A copy of ``y`` with the labels of all but ``per_class`` images per class (drawn by a
    permutation seeded with ``seed``) replaced by -1 (unlabelled)."""
    out = np.full_like(y, -1)
    order = np.random.default_rng(seed).permutation(len(y))
    for k in np.unique(y):
        keep = order[y[order] == k][:per_class]
        out[keep] = y[keep]
    return out


def mixed_per_epoch(y: torch.Tensor, batch_size: int, labelled_batch: int) -> int:
    """Batches per epoch of ``mixed_batches``: full unlabelled shares (batch − L) over the
    unlabelled images, or full batches over the labelled ones when L = the batch size."""
    n_lab = int((y >= 0).sum())
    if labelled_batch == batch_size:
        return num_batches(n_lab, batch_size, drop_last=True)
    return num_batches(len(y) - n_lab, batch_size - labelled_batch, drop_last=True)


def mixed_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, labelled_batch: int, *,
                  seed: int, epoch: int, start_batch: int = 0
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x_b, y_b)`` batches of ``batch_size`` images: the first ``labelled_batch`` rows
    labelled (y ≥ 0), the rest unlabelled (y = -1), ``mixed_per_epoch`` of them.

    Unlabelled rows: ``iterate_batches`` over the unlabelled images (order seeded by
    ``(seed, epoch)``, drop_last). Labelled rows: batch g = epoch × per_epoch + b takes
    positions gL … gL + L − 1 of the endless stream that concatenates permutations of the
    labelled images, pass p's seeded by ``(seed, p, 1)``; so every batch is a function of
    ``(seed, epoch, b)`` (resumable) and every labelled image is used once per pass.
    ``labelled_batch`` = ``batch_size``: ``iterate_batches`` over the labelled images alone.
    """
    if not 1 <= labelled_batch <= batch_size:
        raise ValueError(f"labelled_batch must be in [1, {batch_size}], got {labelled_batch}")
    lab = (y >= 0).nonzero()[:, 0]
    x_lab, y_lab = x[lab], y[lab]
    if len(lab) == 0:
        raise ValueError("no labelled images")
    if labelled_batch == batch_size:
        yield from iterate_batches(x_lab, y_lab, batch_size, shuffle=True, seed=seed,
                                   epoch=epoch, start_batch=start_batch, drop_last=True)
        return
    unl = (y < 0).nonzero()[:, 0]
    per_epoch = mixed_per_epoch(y, batch_size, labelled_batch)
    n_lab, perms = len(lab), {}
    for b, (xu, yu) in enumerate(iterate_batches(
            x[unl], y[unl], batch_size - labelled_batch, shuffle=True, seed=seed, epoch=epoch,
            start_batch=start_batch, drop_last=True), start=start_batch):
        first = (epoch * per_epoch + b) * labelled_batch
        pos = np.arange(first, first + labelled_batch)
        for p in np.unique(pos // n_lab):
            if p not in perms:
                perms[p] = np.random.default_rng([seed, int(p), 1]).permutation(n_lab)
        rows = torch.from_numpy(np.array([perms[q // n_lab][q % n_lab] for q in pos]))
        yield torch.cat([x_lab[rows].float(), xu]), torch.cat([y_lab[rows].long(), yu])
