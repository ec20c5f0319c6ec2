"""The closed-form log joint (dgm-math §1.5, §4.6; catalogue §5.4, §5.14).

Every term of the per-term table against an independent formula (G and B), the terms sum to
the total, the two ways to compute J (``objective`` via the gated forward, ``log_joint`` via the
rendering) differ by exactly the state-independent constants
``logsumexp(β) + (D/2) log 2πσ² [+ (D/2) log 2πτ²]``, normalised − unnormalised is state
independent, B = G − Σ n_ℓ log k_ℓ − R_y (the residual of §1.5) and the corrected logits are
s_y − R_y; numerics: no inf/nan at |bĝ| ~ 1e3, float32 agrees with float64 to 1e-4 relative.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dgm.traverse import channel_view
from dgm.testing import problems, random_state, to_torch


def lse(v):
    m = v.max()
    return m + np.log(np.exp(v - m).sum())


def sq(a):
    return (a * a).reshape(a.shape[0], -1).sum(-1)


def close(a, b, scale):
    """|a − b| ≤ 1e-10·(1 + scale), elementwise (scale: Σ|terms| per example)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert (np.abs(a - b) <= 1e-10 * (1 + np.asarray(scale))).all(), (a, b)


def expected_terms(problem, state, normalisation):
    """The §1.5 table written out independently of the library's bookkeeping."""
    model, params, x = problem.model, problem.params, problem.x
    g0, hooks = model.render(params, state)
    beta = params["head.bias"]
    terms = {"class": beta[state.y] - lse(beta)}
    for path in model.switch_sites:
        leak = model.site_layer[path].leak
        ghat = hooks.ghat[path]
        u = channel_view(params[f"layers.{path}.bias"], ghat.ndim) * ghat
        gate = np.where(state.z[path], 1.0, leak)
        term = gate * u
        if normalisation == "B":  # log p(z | ĝ) with p(z) ∝ e^{γ(z) u}, γ ∈ {leak, 1}
            term = term - np.logaddexp(leak * u, u)
        terms[f"switch:{path}"] = term.reshape(len(u), -1).sum(-1)
    d = math.prod(model.level0_shape)
    if normalisation == "B":
        for path in model.pool_sites:
            kk = model.site_layer[path].kernel_size ** 2
            n_windows = math.prod(state.t[path].shape[1:])
            terms[f"pool:{path}"] = np.full(len(x), -n_windows * math.log(kk))
    else:
        terms["render"] = sq(g0) / (2 * model.sigma2)
    for name, value, mean, var in (("gauss", state.h, g0, model.sigma2),
                                   ("obs", x, state.h, model.tau2)):
        if math.isfinite(var):
            terms[name] = -sq(value - mean) / (2 * var) - d / 2 * math.log(2 * math.pi * var)
    return terms, g0, hooks


@pytest.mark.parametrize("normalisation", ["G", "B"])
@given(problem=problems())
def test_terms_match_the_table_and_sum_to_the_total(normalisation, problem):
    lj = problem.model.log_joint(problem.params, problem.x, problem.state, normalisation,
                                 observed="level0")
    want, _, _ = expected_terms(problem, problem.state, normalisation)
    assert set(lj.terms) == set(want)
    scale = sum(np.abs(v) for v in want.values())
    for name, value in want.items():
        close(np.broadcast_to(lj.terms[name], value.shape), value, scale)
    close(lj.total, sum(lj.terms.values()), scale)
    close(lj.total, sum(want.values()), scale)


@given(problem=problems())
def test_objective_is_log_joint_g_up_to_state_independent_constants(problem):
    """J = s_y − ‖h‖²/2σ² − ‖x̃−h‖²/2τ² and log p_G + log Z_G differ by
    logsumexp(β) + (D/2) log 2πσ² (+ (D/2) log 2πτ²) — the same for every state."""
    model, params, x = problem.model, problem.params, problem.x
    d = math.prod(model.level0_shape)
    const = lse(params["head.bias"]) + d / 2 * math.log(2 * math.pi * model.sigma2)
    if math.isfinite(model.tau2):
        const += d / 2 * math.log(2 * math.pi * model.tau2)
    other = random_state(model, x, problem.rng, problem.grid)  # a second arbitrary state
    other = other.replace(norm_scales=problem.state.norm_scales)
    for state in (problem.state, other):
        lj = model.log_joint(params, x, state, "G", observed="level0")
        j = model.objective(params, x, state)
        scale = sum(np.abs(v) for v in lj.terms.values())
        close(j - lj.total, np.full(len(x), const), scale)


@given(problem=problems())
def test_b_is_g_minus_the_residual(problem):
    """log p_B = (log p_G + log Z_G) − Σ n_ℓ log k_ℓ − R_y(z, t) with
    R_y = ‖g_0‖²/2σ² + Σ sp(b ĝ) (leaky: log(e^{αu} + e^u)); corrected logits = s − R."""
    model, params, x = problem.model, problem.params, problem.x
    n = len(x)
    logits = model.logits(params, problem.state)
    corrected = model.corrected_logits(params, problem.state)
    for k in range(model.classes):
        state = problem.state.replace(y=np.full(n, k))
        g0, hooks = model.render(params, state)
        r = sq(g0) / (2 * model.sigma2)
        for path in model.switch_sites:
            ghat = hooks.ghat[path]
            u = channel_view(params[f"layers.{path}.bias"], ghat.ndim) * ghat
            r = r + np.logaddexp(model.site_layer[path].leak * u, u).reshape(n, -1).sum(-1)
        pools = sum(math.prod(state.t[p].shape[1:]) *
                    math.log(model.site_layer[p].kernel_size ** 2) for p in model.pool_sites)
        g = model.log_joint(params, x, state, "G", observed="level0")
        b = model.log_joint(params, x, state, "B", observed="level0")
        scale = sum(np.abs(v) for v in (*g.terms.values(), *b.terms.values()))
        close(b.total, g.total - pools - r, scale)
        close(corrected[:, k], logits[:, k] - r, scale + np.abs(logits[:, k]))


@given(problem=problems(), magnitude=st.sampled_from([1e2, 1e3]))
def test_large_b_ghat_gives_finite_b(problem, magnitude):
    """|b ĝ| up to ~1e3: B's log joint and corrected logits stay finite and equal the stable
    reference (np.logaddexp)."""
    params = {k: (v * magnitude if k.endswith("bias") and k.startswith("layers") else v)
              for k, v in problem.params.items()}
    big = dataclasses.replace(problem, params=params)
    lj = problem.model.log_joint(params, problem.x, problem.state, "B", observed="level0")
    assert all(np.isfinite(v).all() for v in lj.terms.values())
    assert np.isfinite(problem.model.corrected_logits(params, problem.state)).all()
    want, _, _ = expected_terms(big, problem.state, "B")
    scale = sum(np.abs(v) for v in want.values())
    close(lj.total, sum(want.values()), scale)
    torch_lj = problem.model.log_joint(to_torch(params), to_torch(problem.x),
                                       to_torch(problem.state), "B", observed="level0")
    assert torch.isfinite(torch_lj.total).all()
    close(torch_lj.total.numpy(), lj.total, scale)


@settings(max_examples=50)
@given(problem=problems(), backend=st.sampled_from(["numpy", "torch"]))
def test_float32_objective_agrees_with_float64(problem, backend):
    """J and its differences between states in float32 agree with float64 to 1e-4 relative."""
    model = problem.model

    def f32(v):
        if isinstance(v, dict):
            return {k: f32(a) for k, a in v.items()}
        if v.dtype == np.float64:
            v = v.astype(np.float32)
        return to_torch(v) if backend == "torch" else v

    def state32(s):
        return type(s)(h=f32(s.h), y=f32(s.y), z=f32(s.z), t=f32(s.t),
                       norm_scales=f32(s.norm_scales))

    lj = model.log_joint(problem.params, problem.x, problem.state, "G", observed="level0")
    scale = 1 + sum(np.abs(v) for v in lj.terms.values())
    other = problem.state.replace(h=problem.values(problem.x.shape))
    j64 = [model.objective(problem.params, problem.x, s) for s in (problem.state, other)]
    j32 = [np.asarray(model.objective(f32(problem.params), f32(problem.x), state32(s)),
                      dtype=np.float64) for s in (problem.state, other)]
    for a, b in zip(j32, j64):
        assert (np.abs(a - b) <= 1e-4 * scale).all()
    assert (np.abs((j32[1] - j32[0]) - (j64[1] - j64[0])) <= 2e-4 * scale).all()
