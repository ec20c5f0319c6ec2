"""Per-example attack losses built from logits functions.

All factories return ``loss_fn(x (N, ...), y (N,)) -> (N,)``, a loss to **maximise**.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import LossFn

__all__ = ["ce_loss", "ce_sum_loss", "margin", "margin_loss"]


def ce_loss(logits_fn: Callable[[Tensor], Tensor]) -> LossFn:
    """Cross-entropy of one readout.

    Args:
        logits_fn: ``x (N, ...) -> (N, K)`` logits.

    Returns:
        ``loss_fn(x, y) -> (N,)`` per-example cross-entropy.
    """

    def loss_fn(x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits_fn(x), y, reduction="none")

    return loss_fn


def ce_sum_loss(all_logits_fn: Callable[[Tensor], Sequence[Tensor]]) -> LossFn:
    """Sum of cross-entropies over several readouts (e.g. every CNN-F pass, "e2e-sum").

    Args:
        all_logits_fn: ``x (N, ...) -> [ (N, K), ... ]`` logits of each pass.

    Returns:
        ``loss_fn(x, y) -> (N,)``: per example, ``sum_t CE(logits_t, y)``.
    """

    def loss_fn(x: Tensor, y: Tensor) -> Tensor:
        all_logits = list(all_logits_fn(x))
        if not all_logits:
            raise ValueError("all_logits_fn returned no logits")
        return torch.stack(
            [F.cross_entropy(z, y, reduction="none") for z in all_logits], dim=0
        ).sum(dim=0)

    return loss_fn


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """CW-style margin ``max_{j != y} z_j - z_y``; positive iff misclassified (ties aside).

    Args:
        logits: ``(N, K)``, ``K >= 2``.
        y: ``(N,)`` labels.

    Returns:
        ``(N,)`` margins.
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (N, K>=2), got {tuple(logits.shape)}")
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.max(dim=1).values - true


def margin_loss(
    logits_fn: Callable[[Tensor], Tensor], confidence: float = float("inf")
) -> LossFn:
    """Carlini-Wagner margin loss ``min(max_{j != y} z_j - z_y, confidence)``.

    Args:
        logits_fn: ``x (N, ...) -> (N, K)`` logits.
        confidence: cap on the margin (CW's kappa); the default leaves it uncapped.

    Returns:
        ``loss_fn(x, y) -> (N,)`` per-example margin.
    """

    def loss_fn(x: Tensor, y: Tensor) -> Tensor:
        m = margin(logits_fn(x), y)
        return m.clamp(max=confidence) if confidence != float("inf") else m

    return loss_fn
