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
    "whitebox_not_weaker",
    "gradients_not_vanishing",
    "attack_saturated",
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


def _not_stronger(prefix: str, ref: str, warning: str, acc_ref: float,
                  others: Mapping[str, float], n: int, z: float) -> list[CheckResult]:
    """Each of ``others`` fails when its accuracy is below ``acc_ref`` by more than the
    half-width of the Wilson interval of ``acc_ref`` on ``n`` images."""
    lo, hi = wilson_interval(int(round(acc_ref * n)), n, z)
    half = (hi - lo) / 2.0
    out = []
    for name, acc in others.items():
        ok = bool(acc >= acc_ref - half)
        out.append(CheckResult(
            f"{prefix}[{name}]", ok,
            f"{name} acc {acc:.4f} vs {ref} {acc_ref:.4f} (half-width {half:.4f}, n={n})"
            + ("" if ok else f" -- {warning}: suspect gradient masking")))
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
        acc_whitebox: white-box PGD accuracy (the reference).
        acc_blackbox: black-box accuracy, or attack name -> accuracy.
        n: number of evaluated images.
        z: normal quantile of the interval.

    Returns:
        One result per black-box attack.
    """
    bb = acc_blackbox if isinstance(acc_blackbox, Mapping) else {"blackbox": acc_blackbox}
    return _not_stronger("blackbox_not_stronger", "white-box", "black-box is stronger",
                         acc_whitebox, bb, n, z)


def whitebox_not_weaker(
    acc_scored: float, acc_surrogates: Mapping[str, float], n: int, z: float = 1.96
) -> list[CheckResult]:
    """The attack that differentiates the scored readout itself must not be weaker than one
    that follows a surrogate (e.g. the first pass alone, BPDA) beyond sampling noise.

    A model whose end-to-end gradient is uninformative (flat, shattered, vanishing) resists the
    end-to-end attack while an attack on a surrogate still transfers: e.g. 39.6 % under e2e vs
    26.3 % under the first-pass attack on 1,000 images fails (half-width 3.0 points).

    Args:
        acc_scored: accuracy under the attack on the scored readout (the reference).
        acc_surrogates: surrogate attack name -> accuracy (same images, same readout).
        n: number of evaluated images.
        z: normal quantile of the interval.

    Returns:
        One result per surrogate attack, named ``e2e_not_weaker_than[name]``.
    """
    return _not_stronger("e2e_not_weaker_than", "e2e", "attacking a surrogate beats attacking "
                         "the scored readout", acc_scored, acc_surrogates, n, z)


def gradients_not_vanishing(
    grad_scored: torch.Tensor, grad_reference: torch.Tensor, min_ratio: float = 0.2,
    name: str = "gradients_not_vanishing",
) -> list[CheckResult]:
    """Input gradients of the scored readout must not be much smaller than a reference's.

    Per image the ratio ``‖g_scored‖₁ / ‖g_reference‖₁`` (the L1 norm is the first-order loss
    increase of an L∞ step of size 1); the check fails when the median ratio is below
    ``min_ratio`` (gradients 5× smaller by default), a sign of vanishing or masked gradients
    (e.g. CNN-F's end-to-end gradient vs its first pass's: 5-25× smaller is a warning).

    Args:
        grad_scored: ``(N, ...)`` input gradients of the loss of the scored readout.
        grad_reference: ``(N, ...)`` input gradients of the reference loss (same images).
        min_ratio: smallest acceptable median ratio.
        name: name of the check.

    Returns:
        ``[result]``; the detail gives the median and quartiles of the ratio and the number of
        images whose scored gradient is exactly zero while the reference's is not.
    """
    if grad_scored.shape != grad_reference.shape or grad_scored.dim() < 1:
        raise ValueError(f"gradient shapes differ: {tuple(grad_scored.shape)} vs "
                         f"{tuple(grad_reference.shape)}")
    a = grad_scored.detach().reshape(len(grad_scored), -1).abs().sum(1).double()
    b = grad_reference.detach().reshape(len(grad_reference), -1).abs().sum(1).double()
    keep = b > 0
    if not keep.any():
        return [CheckResult(name, False, "every reference gradient is zero: cannot compare")]
    ratio = a[keep] / b[keep]
    q1, med, q3 = (float(v) for v in torch.quantile(ratio, torch.tensor(
        [0.25, 0.5, 0.75], dtype=torch.float64)))
    zero = int((a[keep] == 0).sum())
    ok = bool(med >= min_ratio)
    return [CheckResult(
        name, ok,
        f"median |grad| ratio {med:.3g} (quartiles {q1:.3g}, {q3:.3g}; threshold {min_ratio:g}; "
        f"{zero} of {int(keep.sum())} scored gradients exactly zero)"
        + ("" if ok else " -- the scored readout's gradients are much smaller: suspect "
           "gradient masking"))]


def attack_saturated(
    acc: float, acc_stronger: float, tol: float = 0.01, what: str = "doubling steps and restarts"
) -> list[CheckResult]:
    """A stronger version of the strongest attack must move the worst case by less than ``tol``.

    Args:
        acc: worst-case accuracy of the evaluation.
        acc_stronger: the same worst case with the stronger attack added.
        tol: largest acceptable drop (0.01 = 1 point), strictly.
        what: how the attack was made stronger (for the detail).

    Returns:
        ``[result]``, named ``attack_saturated``.
    """
    drop = acc - acc_stronger
    ok = bool(drop < tol)
    return [CheckResult(
        "attack_saturated", ok,
        f"{what}: worst case {acc:.4f} -> {acc_stronger:.4f} (drop {drop:.4f}, tol {tol:g})"
        + ("" if ok else " -- the worst case is not saturated: attack harder"))]


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
