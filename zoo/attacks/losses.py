"""Per-example attack losses built from logits functions.

All factories return ``loss_fn(x (N, ...), y (N,)) -> (N,)``, a loss to **maximise**.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import LossFn

__all__ = ["cross_entropy", "ce_loss", "ce_sum_loss", "dlr", "dlr_loss", "dlr_sum_loss",
           "margin", "margin_loss", "of_readout", "summed_over_passes"]

LogitsLoss = Callable[[Tensor, Tensor], Tensor]
"""``loss(logits (N, K), y (N,)) -> (N,)``: a loss of one readout's logits."""


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Per-example cross-entropy ``-log softmax(z)_y`` of logits ``(N, K)``; ``(N,)``."""
    return F.cross_entropy(logits, y, reduction="none")


def ce_loss(logits_fn: Callable[[Tensor], Tensor]) -> LossFn:
    """Cross-entropy of one readout.

    Args:
        logits_fn: ``x (N, ...) -> (N, K)`` logits.

    Returns:
        ``loss_fn(x, y) -> (N,)`` per-example cross-entropy.
    """
    return of_readout(cross_entropy, logits_fn)


def of_readout(loss: LogitsLoss, logits_fn: Callable[[Tensor], Tensor]) -> LossFn:
    """``loss(logits_fn(x), y)``: a loss of one readout's logits as an attack loss.

    Args:
        loss: ``(logits (N, K), y (N,)) -> (N,)``, e.g. :func:`cross_entropy`, :func:`dlr`.
        logits_fn: ``x (N, ...) -> (N, K)`` logits.

    Returns:
        ``loss_fn(x, y) -> (N,)``.
    """
    return lambda x, y: loss(logits_fn(x), y)


def summed_over_passes(loss: LogitsLoss,
                       all_logits_fn: Callable[[Tensor], Sequence[Tensor]]) -> LossFn:
    """``sum_t loss(logits_t, y)`` over several readouts (e.g. every CNN-F pass).

    Args:
        loss: ``(logits (N, K), y (N,)) -> (N,)``, e.g. :func:`dlr`.
        all_logits_fn: ``x (N, ...) -> [ (N, K), ... ]`` logits of each pass.

    Returns:
        ``loss_fn(x, y) -> (N,)``.
    """

    def loss_fn(x: Tensor, y: Tensor) -> Tensor:
        all_logits = list(all_logits_fn(x))
        if not all_logits:
            raise ValueError("all_logits_fn returned no logits")
        return torch.stack([loss(z, y) for z in all_logits], dim=0).sum(dim=0)

    return loss_fn


def ce_sum_loss(all_logits_fn: Callable[[Tensor], Sequence[Tensor]]) -> LossFn:
    """Sum of cross-entropies over several readouts (e.g. every CNN-F pass, "e2e-sum").

    Args:
        all_logits_fn: ``x (N, ...) -> [ (N, K), ... ]`` logits of each pass.

    Returns:
        ``loss_fn(x, y) -> (N,)``: per example, ``sum_t CE(logits_t, y)``.
    """
    return summed_over_passes(cross_entropy, all_logits_fn)


def dlr(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of logits ratio (Croce & Hein 2020, eq. 6), a loss to maximise:

    ``DLR(z, y) = -(z_y - max_{i != y} z_i) / (z_π1 - z_π3 + 1e-12)``

    with ``z_π1 >= z_π2 >= ...`` the sorted logits. It is invariant to shifting and (positive)
    scaling of the logits, so unlike the cross-entropy it keeps its gradient when the softmax
    saturates (huge logits); it is positive iff the example is misclassified (ties aside).

    Args:
        logits: ``(N, K)``, ``K >= 3``.
        y: ``(N,)`` labels.

    Returns:
        ``(N,)`` DLR values.
    """
    if logits.dim() != 2 or logits.shape[1] < 3:
        raise ValueError(f"DLR needs logits of shape (N, K>=3), got {tuple(logits.shape)}")
    top = logits.topk(3, dim=1).values
    return margin(logits, y) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_loss(logits_fn: Callable[[Tensor], Tensor]) -> LossFn:
    """DLR (:func:`dlr`) of one readout.

    Args:
        logits_fn: ``x (N, ...) -> (N, K)`` logits, ``K >= 3``.

    Returns:
        ``loss_fn(x, y) -> (N,)`` per-example DLR.
    """
    return of_readout(dlr, logits_fn)


def dlr_sum_loss(all_logits_fn: Callable[[Tensor], Sequence[Tensor]]) -> LossFn:
    """Sum of the DLR losses of several readouts (every CNN-F pass: "apgd-dlr").

    Returns:
        ``loss_fn(x, y) -> (N,)``: per example, ``sum_t DLR(logits_t, y)``.
    """
    return summed_over_passes(dlr, all_logits_fn)


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
