"""Automated sanity checks against gradient masking (Carlini et al., 2019, "On Evaluating
Adversarial Robustness"; Athalye et al., 2018).

Each check returns a list of :class:`CheckResult`; :func:`format_report` renders them with
failures first.  Accuracies are fractions in ``[0, 1]``; budgets are whatever units the
caller uses consistently (input units in this package).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np
import torch

from .stats import wilson_interval

__all__ = [
    "CheckResult",
    "accuracy_vanishes",
    "more_steps_never_help",
    "blackbox_not_stronger",
    "repeatable",
    "format_report",
]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check: ``name``, whether it ``passed``, and a human-readable ``detail``."""

    name: str
    passed: bool
    detail: str


def accuracy_vanishes(
    acc_by_eps: Mapping[float, float],
    large_eps_acc: float,
    threshold: float = 0.1,
    tol: float = 0.0,
) -> list[CheckResult]:
    """Accuracy must reach (near) zero at a very large budget and must not grow with eps.

    Args:
        acc_by_eps: eps -> robust accuracy for the budgets of the evaluation.
        large_eps_acc: accuracy under the same attack at a budget large enough to destroy
            the image (e.g. the whole input range); unbounded attacks must succeed.
        threshold: largest acceptable ``large_eps_acc``.
        tol: slack allowed when checking that accuracy is non-increasing in eps.

    Returns:
        ``[large-eps check, monotone-in-eps check]``.
    """
    out = [
        CheckResult(
            "accuracy_vanishes_at_large_eps",
            bool(large_eps_acc <= threshold),
            f"accuracy at large eps = {large_eps_acc:.4f} (threshold {threshold:.4f})",
        )
    ]
    items = sorted(acc_by_eps.items())
    bad = [
        f"eps {e0:g}->{e1:g}: {a0:.4f}->{a1:.4f}"
        for (e0, a0), (e1, a1) in zip(items, items[1:])
        if a1 > a0 + tol
    ]
    out.append(
        CheckResult(
            "accuracy_nonincreasing_in_eps",
            not bad,
            ("increases: " + "; ".join(bad))
            if bad
            else f"non-increasing over eps {[e for e, _ in items]} (tol {tol:g})",
        )
    )
    return out


def more_steps_never_help(
    acc_steps: Mapping[int, float], tol: float = 0.0, converged_tol: Optional[float] = None
) -> list[CheckResult]:
    """Accuracy must not increase as the attack budget (PGD steps or restarts) grows.

    Args:
        acc_steps: steps (or restarts) -> robust accuracy.
        tol: slack allowed for each increase between consecutive budgets.
        converged_tol: if given, also check that the two largest budgets differ by at most
            this much (the attack has converged; otherwise the evaluation is underpowered).

    Returns:
        ``[monotone check]`` plus ``[convergence check]`` when ``converged_tol`` is given.
    """
    items = sorted(acc_steps.items())
    bad = [
        f"{k0}->{k1}: {a0:.4f}->{a1:.4f}"
        for (k0, a0), (k1, a1) in zip(items, items[1:])
        if a1 > a0 + tol
    ]
    out = [
        CheckResult(
            "more_steps_never_help",
            not bad,
            ("accuracy increases with attack budget: " + "; ".join(bad))
            if bad
            else f"non-increasing over budgets {[k for k, _ in items]} (tol {tol:g})",
        )
    ]
    if converged_tol is not None:
        if len(items) < 2:
            out.append(CheckResult("attack_converged", False, "need at least two budgets"))
        else:
            (k0, a0), (k1, a1) = items[-2], items[-1]
            out.append(
                CheckResult(
                    "attack_converged",
                    bool(abs(a0 - a1) <= converged_tol),
                    f"{k0}->{k1}: {a0:.4f}->{a1:.4f} (tol {converged_tol:g})",
                )
            )
    return out


def blackbox_not_stronger(
    acc_whitebox: float,
    acc_blackbox: Union[float, Mapping[str, float]],
    n: int,
    z: float = 1.96,
) -> list[CheckResult]:
    """Black-box attacks (SPSA, transfer) must not beat white-box PGD beyond sampling noise.

    Fails when ``acc_blackbox < acc_whitebox - h`` where ``h`` is the half-width of the Wilson
    interval of ``acc_whitebox`` on ``n`` images.

    Args:
        acc_whitebox: white-box PGD accuracy.
        acc_blackbox: black-box accuracy, or attack name -> accuracy.
        n: number of evaluated images.
        z: normal quantile of the interval.

    Returns:
        One result per black-box attack.
    """
    k = int(round(acc_whitebox * n))
    lo, hi = wilson_interval(k, n, z)
    half = (hi - lo) / 2.0
    bb = acc_blackbox if isinstance(acc_blackbox, Mapping) else {"blackbox": acc_blackbox}
    out = []
    for name, acc in bb.items():
        ok = bool(acc >= acc_whitebox - half)
        out.append(
            CheckResult(
                f"blackbox_not_stronger[{name}]",
                ok,
                f"{name} acc {acc:.4f} vs white-box {acc_whitebox:.4f} "
                f"(half-width {half:.4f}, n={n})"
                + ("" if ok else " -- black-box is stronger: suspect gradient masking"),
            )
        )
    return out


def _identical(a: Any, b: Any) -> bool:
    """Exact structural equality of numbers, tensors, arrays, mappings and sequences (NaN == NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        return bool(torch.equal(a.cpu(), b.cpu())) or (
            a.is_floating_point()
            and bool(torch.equal(a.isnan().cpu(), b.isnan().cpu()))
            and bool(torch.equal(a.nan_to_num(0.0).cpu(), b.nan_to_num(0.0).cpu()))
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def repeatable(run_fn: Callable[[], Any], name: str = "repeatable") -> list[CheckResult]:
    """Running the evaluation twice must give identical numbers.

    Args:
        run_fn: zero-argument callable returning the evaluation's numbers (a float, tensor,
            array, or nested dict/list of them); it must seed its own randomness.
        name: name of the check.

    Returns:
        ``[result]``.
    """
    first = run_fn()
    second = run_fn()
    ok = _identical(first, second)
    detail = "two runs identical" if ok else f"runs differ: {first!r} vs {second!r}"
    if len(detail) > 500:
        detail = detail[:497] + "..."
    return [CheckResult(name, ok, detail)]


def format_report(results: Iterable[CheckResult]) -> str:
    """Render check results, failures first and prominently.

    Returns:
        A multi-line report; the first line says how many checks failed.
    """
    results = list(results)
    failed = [r for r in results if not r.passed]
    passed = [r for r in results if r.passed]
    lines = []
    if failed:
        lines.append(f"!!! {len(failed)} of {len(results)} gradient-masking checks FAILED !!!")
        lines += [f"  FAIL  {r.name}: {r.detail}" for r in failed]
    else:
        lines.append(f"all {len(results)} gradient-masking checks passed")
    lines += [f"  ok    {r.name}: {r.detail}" for r in passed]
    return "\n".join(lines)
