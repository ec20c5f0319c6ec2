"""The exact per-layer block maximisers (dgm-math §3.2), vectorised over units and windows.

With ``a`` the bottom-up pre-activation of the current forward pass and ``ĝ``/``g`` the
top-down rendering from the start of the cycle, J restricted to layer ℓ is
``⟨γ(z_ℓ) ⊙ a_ℓ, U_{t_ℓ} g_ℓ⟩`` + const, separable per unit and window:

* z-step (AdaReLU): ``z = 1[a·ĝ > 0]``;
* t-step (AdaPool): arg-max of the window where ``g > 0``, arg-min where ``g < 0``;
* joint (z, t) block: the t-step on ``a`` itself, then the z-step at the chosen position.

Ties (product exactly 0, equal window entries) keep the current value (``keep=True``), which
preserves monotonicity and gives termination (§4.2); ``keep=False`` is CNN-F's rule (a unit with
zero feedback is switched off).
"""
from __future__ import annotations


def z_step(ops, a, ghat, z_old, keep: bool = True):
    """AdaReLU gates: on where a·ĝ > 0, off where < 0, ties keep ``z_old`` (or off)."""
    prod = a * ghat
    on = prod > 0
    return (on | ((prod == 0) & z_old)) if keep else on


def t_step(ops, win, g, t_old, keep: bool = True):
    """AdaPool positions: window arg-max where g > 0, arg-min where g < 0, ``t_old`` on ties.

    ``win`` (N,C,H',W',k²) holds the values a pool position would pass; ``g`` (N,C,H',W')."""
    cand = ops.where(g > 0, ops.argmax(win, -1), ops.argmin(win, -1))
    if not keep:
        return cand
    tie = (g == 0) | (ops.select(win, t_old) == ops.select(win, cand))
    return ops.where(tie, t_old, cand)


def joint_step(ops, a, g, z_old, t_old, k: int, keep: bool = True):
    """The joint (z_ℓ, t_ℓ) block for a Switch followed by a k×k MaxPool.

    Per window: p* = arg-max (g > 0) / arg-min (g < 0) of ``a``; switch p* on iff a_{p*}·g > 0;
    the other units of the window are ties (rendered value 0): keep their value (or off).
    Returns ``(z_new (N,C,H,W) bool, t_new (N,C,H',W') int)``."""
    wa = ops.windows(a, k)
    t_new = t_step(ops, wa, g, t_old, keep)
    zw = ops.windows(z_old, k)
    z_sel = z_step(ops, ops.select(wa, t_new), g, ops.select(zw, t_new), keep)
    chosen = ops.one_hot(t_new, k * k, a) > 0
    rest = zw if keep else zw & False
    return ops.unwindows(ops.where(chosen, z_sel[..., None], rest), k), t_new


def y_step(ops, s, y_old, keep: bool = True):
    """Hard class step: arg-max of the logits, keeping ``y_old`` when it attains the maximum."""
    best = ops.argmax(s, -1)
    if not keep:
        return best
    s_best = ops.take_along_axis(s, best[:, None], -1)[:, 0]
    s_old = ops.take_along_axis(s, y_old[:, None], -1)[:, 0]
    return ops.where(s_old >= s_best, y_old, best)
