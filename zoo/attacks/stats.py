"""Robustness statistics: binomial confidence intervals and paired tests on per-image outcomes."""

from __future__ import annotations

import math
from typing import Union

import torch
from scipy.stats import binomtest
from torch import Tensor

__all__ = ["wilson_interval", "mcnemar_exact", "mcnemar_p", "accuracy_with_interval"]


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``.

    Args:
        k: successes, ``0 <= k <= n``.
        n: trials; ``n == 0`` gives the uninformative ``(0.0, 1.0)``.
        z: normal quantile (1.96 for 95 %).

    Returns:
        ``(lo, hi)`` with ``0 <= lo <= k/n <= hi <= 1``; ``lo == 0`` exactly when ``k == 0``
        and ``hi == 1`` exactly when ``k == n``.
    """
    k, n = int(k), int(n)
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    lo = 0.0 if k == 0 else max(0.0, center - half)
    hi = 1.0 if k == n else min(1.0, center + half)
    return lo, hi


def _as_bool_1d(c: Union[Tensor, "list[bool]"], name: str) -> Tensor:
    t = torch.as_tensor(c).detach().cpu()
    if t.dtype != torch.bool or t.dim() != 1:
        raise ValueError(f"{name} must be a 1-D bool tensor")
    return t


def mcnemar_exact(correct_a: Tensor, correct_b: Tensor) -> dict[str, float]:
    """Exact (binomial) McNemar test on paired per-image outcomes of two evaluations.

    Args:
        correct_a: ``(N,)`` bool, correct under evaluation A.
        correct_b: ``(N,)`` bool, correct under evaluation B (same images, same order).

    Returns:
        ``dict(b01, b10, p_value)``: ``b01`` = #(A wrong, B right), ``b10`` = #(A right,
        B wrong), and the two-sided exact p-value of ``b01 ~ Binomial(b01 + b10, 1/2)``
        (``1.0`` when there are no discordant pairs).
    """
    a = _as_bool_1d(correct_a, "correct_a")
    b = _as_bool_1d(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {tuple(a.shape)} vs {tuple(b.shape)}")
    b01 = int((~a & b).sum().item())
    b10 = int((a & ~b).sum().item())
    return {"b01": b01, "b10": b10, "p_value": mcnemar_p(b01, b10)}


def mcnemar_p(b01: int, b10: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts: ``b01 ~ Binomial(b01 +
    b10, 1/2)`` (``1.0`` when there are none)."""
    if b01 + b10 == 0:
        return 1.0
    return min(1.0, float(binomtest(int(b01), int(b01 + b10), 0.5).pvalue))


def accuracy_with_interval(correct: Tensor, z: float = 1.96) -> dict[str, float]:
    """Accuracy with its Wilson interval.

    Args:
        correct: ``(N,)`` bool per-image outcomes.
        z: normal quantile.

    Returns:
        ``dict(acc, lo, hi, n)`` (``acc`` is NaN when ``n == 0``).
    """
    c = _as_bool_1d(correct, "correct")
    n = int(c.numel())
    k = int(c.sum().item())
    lo, hi = wilson_interval(k, n, z)
    return {"acc": k / n if n else float("nan"), "lo": lo, "hi": hi, "n": n}
