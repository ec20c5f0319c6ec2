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
    k = round(win.shape[-1] ** 0.5)
    return pool_t_step(ops, ops.unwindows(win, k), g, t_old, k, keep)


def pool_t_step(ops, x, g, t_old, k: int, keep: bool = True):
    """``t_step`` on the map ``x`` (N,C,H,W) itself, with fused window extrema (no window copy)."""
    return _positions(ops, x, g, t_old, k, keep)[0]


def _positions(ops, x, g, t_old, k: int, keep: bool, overwrite: bool = False,
               gated: bool = False):
    """``pool_t_step``'s positions and the values of ``x`` there: ``(t_new, P_{t_new} x)``.

    Positions carry no gradient, so they are computed on ``stop_gradient(x)`` (and so are the
    values); the window extrema come with their values, so P_t x needs a gather only at
    ``t_old``. ``overwrite``: ``x`` is a spent temporary the extremum search may write into.
    Ties keep ``t_old`` where the block objective is equal (§4.3): g = 0, the same value, or
    (``gated``: the joint block of a switch with no leak) a best entry with g·x ≤ 0, where
    every position's unit is off and contributes 0."""
    overwrite = overwrite and not ops.needs_grad(x)
    x = ops.stop_gradient(x)
    v_old = ops.pool_select(x, t_old, k) if keep else None  # (read before x may be written)
    ops.forget(t_old)  # (the old positions are not placed or selected again this cycle)
    v_cand, cand = ops.extremum_pool_positions(x, g > 0, k, overwrite=overwrite)
    if not keep:
        return cand, v_cand
    tie = (g * v_cand <= 0) if gated else (g == 0)
    tie = tie | (v_old == v_cand)
    return ops.where(tie, t_old, cand), ops.where(tie, v_old, v_cand)


def joint_step(ops, a, g, z_old, t_old, k: int, keep: bool = True, leak: float = 0.0):
    """The joint (z_ℓ, t_ℓ) block for a Switch (``leak``) followed by a k×k MaxPool.

    Per window: p* = arg-max (g > 0) / arg-min (g < 0) of ``a``; switch p* on iff a_{p*}·g > 0;
    the other units of the window are ties (rendered value 0): keep their value (or off).
    ``keep``: t stays where it attains the block objective's maximum, g·γ(z)·a at the selected
    unit (§4.3), e.g. where every entry disagrees in sign with g and ``leak`` = 0.
    Returns ``(z_new (N,C,H,W) bool, t_new (N,C,H',W') int)``."""
    return _joint(ops, a, g, z_old, t_old, k, keep, leak=leak)[:2]


def joint_step_pooled(ops, a, g, z_old, t_old, k: int, keep: bool = True, leak: float = 0.0,
                      overwrite: bool = False):
    """``joint_step`` and the pair's forward output ``P_{t_new}(γ(z_new) ⊙ a)`` (N,C,H',W'),
    computed on the chosen entries only, ``γ(z_sel) ⊙ a_sel`` (the same numbers).
    ``overwrite``: ``a`` is a temporary not read afterwards (its contents are then spent)."""
    z_new, t_new, a_sel, z_sel = _joint(ops, a, g, z_old, t_old, k, keep, overwrite, leak)
    if ops.needs_grad(a):  # a_sel is detached (positions carry no gradient): gather from a
        a_sel = ops.pool_select(a, t_new, k)
    return z_new, t_new, ops.gate(a_sel, z_sel, leak, overwrite=True)  # (a_sel is new)


def _joint(ops, a, g, z_old, t_old, k: int, keep: bool, overwrite: bool = False,
           leak: float = 0.0):
    """``(z_new, t_new, a_sel, z_sel)``: the joint block and the chosen entries of a and z."""
    t_new, a_sel = _positions(ops, a, g, t_old, k, keep, overwrite, gated=leak == 0)
    z_sel = z_step(ops, a_sel, g, ops.pool_select(z_old, t_new, k), keep)
    rest = z_old if keep else z_old & False
    return ops.pool_update(rest, t_new, z_sel, k), t_new, a_sel, z_sel


def y_step(ops, s, y_old, keep: bool = True):
    """Hard class step: arg-max of the logits, keeping ``y_old`` when it attains the maximum."""
    best = ops.argmax(s, -1)
    if not keep:
        return best
    s_best = ops.take_along_axis(s, best[:, None], -1)[:, 0]
    s_old = ops.take_along_axis(s, y_old[:, None], -1)[:, 0]
    return ops.where(s_old >= s_best, y_old, best)
