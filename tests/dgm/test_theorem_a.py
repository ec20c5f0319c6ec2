"""Theorem A, the gated-linear identity (dgm-math §2.1; catalogue §5.2, §5.10):

    s_y(h; z, t) = β_y + ⟨h, g_0(y, z, t)⟩/σ² + Σ_ℓ ⟨b_ℓ ⊙ γ(z_ℓ), ĝ_ℓ(y, z, t)⟩

for arbitrary (h, y, z, t) on every skeleton (dense, conv, pools, frozen norm, residual blocks,
leaky switches); the rendering is σ²∇_h s_y with the gates frozen (torch float64 autograd); and
the logit invariances: s(h; σ²) = s(h/σ²; 1), class relabelling permutes logits and renderings,
a constant added to β disappears after log-softmax.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dgm import DGM
from dgm.traverse import channel_view
from dgm.testing import problems, to_torch


def scale(*arrays) -> float:
    return 1.0 + max(float(np.abs(a).max()) for a in arrays)


def rendering_form(problem, state, y):
    """β_y + ⟨h, g_0⟩/σ² + Σ ⟨b ⊙ γ(z), ĝ⟩ for class array ``y`` (N,), computed from the
    rendering alone."""
    model, params = problem.model, problem.params
    s = state.replace(y=y)
    g0, hooks = model.render(params, s)
    n = state.h.shape[0]
    total = params["head.bias"][y] + (state.h * g0).reshape(n, -1).sum(-1) / model.sigma2
    for path in model.switch_sites:
        leak = model.site_layer[path].leak
        gate = np.where(s.z[path], 1.0, leak)
        ghat = hooks.ghat[path]
        b = channel_view(params[f"layers.{path}.bias"], ghat.ndim)
        total = total + (b * gate * ghat).reshape(n, -1).sum(-1)
    return total


@given(problem=problems())
def test_gated_forward_equals_rendering_form(problem):
    logits = problem.model.logits(problem.params, problem.state)
    n = problem.x.shape[0]
    for k in range(problem.model.classes):
        y = np.full(n, k)
        expected = rendering_form(problem, problem.state, y)
        np.testing.assert_allclose(logits[:, k], expected, rtol=1e-11,
                                   atol=1e-11 * scale(logits, expected))


@given(problem=problems())
def test_rendering_is_sigma2_times_gradient_of_the_logit(problem):
    """g_0(y) = σ² ∇_h s_y(h; z, t) with (z, t) frozen, by torch float64 autograd."""
    model, state = problem.model, problem.state
    params, tstate = to_torch(problem.params), to_torch(state)
    h = tstate.h.clone().requires_grad_(True)
    s = model.logits(params, tstate, h=h)
    s.gather(1, tstate.y[:, None]).sum().backward()
    g0, _ = model.render(problem.params, state)
    np.testing.assert_allclose(model.sigma2 * h.grad.numpy(), g0, rtol=1e-11,
                               atol=1e-11 * scale(g0))


@given(problem=problems())
def test_sigma2_only_rescales_the_input(problem):
    """s(h; σ², b) = s(h/σ²; 1, b)."""
    m = problem.model
    unit = DGM(m.layers, m.classes, sigma2=1.0, tau2=m.tau2, input_shape=m.input_shape,
               norm=m.norm)
    state = problem.state
    s = m.logits(problem.params, state)
    s1 = unit.logits(problem.params, state.replace(h=state.h / m.sigma2))
    np.testing.assert_allclose(s, s1, rtol=1e-12, atol=1e-12 * scale(s))


@given(problem=problems(), data=st.data())
def test_class_relabelling_permutes_logits_and_renderings(problem, data):
    """Permuting the rows of A and β permutes the logits; class π(y) renders what y rendered."""
    k = problem.model.classes
    perm = np.array(data.draw(st.permutations(range(k))))  # new class perm[c] = old class c
    inv = np.argsort(perm)
    params = dict(problem.params)
    params["head.weight"] = problem.params["head.weight"][inv]
    params["head.bias"] = problem.params["head.bias"][inv]
    state = problem.state
    s = problem.model.logits(problem.params, state)
    s_perm = problem.model.logits(params, state)
    np.testing.assert_allclose(s_perm[:, perm], s, rtol=1e-12, atol=1e-12 * scale(s))
    g0, _ = problem.model.render(problem.params, state)
    g0_perm, _ = problem.model.render(params, state.replace(y=perm[state.y]))
    np.testing.assert_array_equal(g0_perm, g0)


@given(problem=problems(), c=st.floats(-50, 50))
def test_constant_added_to_beta_vanishes_after_log_softmax(problem, c):
    params = dict(problem.params)
    params["head.bias"] = problem.params["head.bias"] + c
    s = problem.model.logits(problem.params, problem.state)
    s_c = problem.model.logits(params, problem.state)

    def log_softmax(v):
        m = v.max(-1, keepdims=True)
        return v - m - np.log(np.exp(v - m).sum(-1, keepdims=True))

    np.testing.assert_allclose(log_softmax(s_c), log_softmax(s), rtol=0,
                               atol=1e-12 * scale(s, s_c))
    np.testing.assert_allclose(problem.model.class_log_prior(params, problem.state.y),
                               problem.model.class_log_prior(problem.params, problem.state.y),
                               rtol=0, atol=1e-12 * (1 + abs(c)))
