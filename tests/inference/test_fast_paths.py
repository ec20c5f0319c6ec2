"""The engine's fast paths give the same numbers as the general code they bypass (issue 7):

* ``DGM.plain_logits`` (no latents recorded, x̃ not kept) = ``plain_state``'s logits, and
  ``CNNF`` with 0 cycles = pass 0 of the engine, with the same gradients;
* the fused joint (switch, pool) block — the pool's output taken from the chosen entries, no
  full gated map — used when no step callback runs (``record`` "none"/"cycle") = the unfused
  path (``record="step"``) exactly on numpy, for every option set; on torch float64 it
  agrees with the unfused path and with numpy to 1e-10;
* ``converged=False`` skips the fixed-point test and changes nothing else;
* without a gradient, the in-place bias sums, Norm quotients and h-step give the same numbers
  as the out-of-place path and never write into the caller's x or an earlier state;
* rendering with ĝ kept only where the sweep reads it (pooled gates, in-place gates) gives
  the same g_0; h* is g_0 itself when τ² = ∞; ``update`` writes in place only when allowed.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import backend_by_name
from dgm import DGM
from dgm import layers as L
from inference import Options, alternating_map
from inference._sweep import Sweep
from inference._blocks import joint_step, joint_step_pooled
from dgm.testing import problems, to_torch
from tests.inference.test_parity_torch import OPTIONS, num

NP = backend_by_name("numpy")
TO = backend_by_name("torch")


def _same(a, b):
    assert torch.equal(torch.as_tensor(num(a)), torch.as_tensor(num(b)))


def _same_result(r1, r2):
    for a, b in zip(r1.logits, r2.logits, strict=True):
        _same(a, b)
    _same(r1.state.h, r2.state.h)
    _same(r1.state.y, r2.state.y)
    for k in r1.state.z:
        _same(r1.state.z[k], r2.state.z[k])
    for k in r1.state.t:
        _same(r1.state.t[k], r2.state.t[k])


@pytest.mark.parametrize("name", sorted(OPTIONS))
@settings(max_examples=15, deadline=None)
@given(problem=problems(kind="conv"))
def test_fused_sweep_equals_unfused(name, problem):
    """record="none" (fused joint blocks) = record="step" (every step through the callback)
    on numpy, exactly (ties included)."""
    kw = dict(cycles=3, options=OPTIONS[name], observed="level0", initial_state=problem.state)
    args = (problem.model, problem.params, problem.x)
    _same_result(alternating_map(*args, record="none", **kw),
                 alternating_map(*args, record="step", **kw))


@pytest.mark.parametrize("name", sorted(OPTIONS))
@settings(max_examples=15, deadline=None)
@given(problem=problems(kind="conv", grids=(None,)))
def test_fused_sweep_torch_agrees(name, problem):
    """The fused torch float64 sweep agrees with the unfused one and with numpy to 1e-10
    (torch's float64 kernels may round the last bit differently from call to call)."""
    kw = dict(cycles=3, options=OPTIONS[name], observed="level0")
    fast = alternating_map(problem.model, to_torch(problem.params), to_torch(problem.x),
                           record="none", initial_state=to_torch(problem.state), **kw)
    for ref in (alternating_map(problem.model, to_torch(problem.params), to_torch(problem.x),
                                record="step", initial_state=to_torch(problem.state), **kw),
                alternating_map(problem.model, problem.params, problem.x, record="none",
                                initial_state=problem.state, **kw)):
        for a, b in zip(fast.logits, ref.logits, strict=True):
            np.testing.assert_allclose(num(a), num(b), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(num(fast.state.h), num(ref.state.h), rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(problem=problems(kind="conv"))
def test_joint_step_pooled_output_and_gradient(problem):
    """``joint_step_pooled``'s output = P_t(γ(z_new) ⊙ a), values and gradient in a."""
    model = problem.model
    for path, pool in model.pool_partner.items():
        k = model.site_layer[pool].kernel_size
        a = problem.values((problem.x.shape[0],) + tuple(model.shapes[path]))
        g = problem.values(problem.state.t[pool].shape)
        leak = model.site_layer[path].leak
        z_old, t_old = problem.state.z[path], problem.state.t[pool]
        for keep in (True, False):
            z, t = joint_step(NP, a, g, z_old, t_old, k, keep, leak)
            z2, t2, out = joint_step_pooled(NP, a, g, z_old, t_old, k, keep, leak)
            np.testing.assert_array_equal(z, z2)
            np.testing.assert_array_equal(t, t2)
            np.testing.assert_array_equal(out, NP.pool_select(NP.gate(a, z, leak), t, k))
            at = to_torch(a).requires_grad_(True)
            w = to_torch(problem.values(out.shape))
            outs = []
            for fused in (True, False):
                at.grad = None
                args = (TO, at, to_torch(g), to_torch(z_old), to_torch(t_old), k, keep)
                if fused:
                    zt, tt, o = joint_step_pooled(*args, leak)
                else:
                    zt, tt = joint_step(*args, leak)
                    o = TO.pool_select(TO.gate(at, zt, leak), tt, k)
                (o * w).sum().backward()
                outs.append((o.detach(), at.grad.clone()))
            assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


@settings(max_examples=40, deadline=None)
@given(problem=problems())
def test_plain_logits_equal_plain_state(problem):
    model, params, x = problem.model, problem.params, problem.x
    for conv in (lambda v: v, to_torch):
        p, xv = conv(params), conv(x)
        _same(model.plain_logits(p, xv), model.plain_state(p, model.encode(p, xv))[1])


def test_cnnf_zero_cycles_is_pass_zero():
    """The 0-cycle module (plain path) = the engine's pass 0, logits and gradients."""
    from zoo.models.fashion import fashion_cnnf
    net = fashion_cnnf(cycles=2)
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        _same(net(x, cycles=0), net.run(x, 0).logits[0])
        _same(net.first_pass(x), net.run(x, 2).logits[0])
    grads = []
    for fn in (lambda v: net.first_pass(v), lambda v: net.run(v, 0).logits[0]):
        net.zero_grad()
        xv = x.clone().requires_grad_(True)
        fn(xv).square().sum().backward()
        grads.append([xv.grad] + [p.grad.clone() for p in net.parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 1
    for a, b in zip(*grads):
        _same(a, b)


@settings(max_examples=20, deadline=None)
@given(problem=problems())
def test_skipping_the_fixed_point_test_changes_nothing_else(problem):
    kw = dict(cycles=2, observed="level0", initial_state=problem.state, record="none")
    full = alternating_map(problem.model, problem.params, problem.x, **kw)
    fast = alternating_map(problem.model, problem.params, problem.x, converged=False, **kw)
    assert fast.converged is None and full.converged is not None
    _same_result(full, fast)


@pytest.mark.parametrize("head", [[L.Switch(2)], [L.Flatten(), L.Switch(8)]])
def test_plain_logits_never_write_into_the_input(head):
    """The fused add+ReLU writes in place only into the walk's own temporaries: a Switch right
    after the input (or after Flatten's view of it) leaves the caller's x untouched."""
    rest = [] if len(head) == 2 else [L.Flatten()]
    model = DGM(head + rest + [L.Dense(8, 4), L.Switch(4)], classes=3, input_shape=(2, 2, 2))
    params = model.init("torch", seed=0, dtype=torch.float64)
    params = {k: torch.randn(v.shape, dtype=v.dtype, generator=torch.Generator().manual_seed(i))
              for i, (k, v) in enumerate(params.items())}  # nonzero biases
    x = torch.randn(5, 2, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x0 = x.clone()
    with torch.inference_mode():
        logits = model.plain_logits(params, x)
    assert torch.equal(x, x0)
    _same(logits, model.plain_state(params, x)[1])


@pytest.mark.parametrize("norm", ["frozen", "original", "none"])
@pytest.mark.parametrize("options", ["exact", "original"])
def test_in_place_cycles_equal_the_differentiable_ones(norm, options):
    """Without a gradient the engine writes the bias sums, Norm quotients and the h-step into
    its own temporaries: the same numbers as the out-of-place path taken when the parameters
    require a gradient, and the caller's x and the states of earlier cycles stay untouched."""
    from inference import Options
    model = DGM([L.Conv2d(2, 3, 3, padding=1), L.Norm(), L.Switch(3), L.MaxPool(2),
                 L.Conv2d(3, 4, 3, padding=1), L.Norm(), L.Switch(4), L.Flatten(),
                 L.Dense(16, 5), L.Switch(5)], classes=3, input_shape=(2, 4, 4), norm=norm,
                sigma2=2.0, tau2=3.0)
    params = model.init("torch", seed=0, dtype=torch.float64)
    params = {k: torch.randn(v.shape, dtype=v.dtype, generator=torch.Generator().manual_seed(i))
              for i, (k, v) in enumerate(params.items())}  # nonzero biases
    x = torch.randn(6, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x0 = x.clone()
    opt = Options() if options == "exact" else Options.original()
    kw = dict(cycles=3, options=opt, record="cycle")
    with torch.inference_mode():
        fast = alternating_map(model, params, x, **kw)
    assert torch.equal(x, x0)
    slow = alternating_map(model, {k: v.clone().requires_grad_() for k, v in params.items()},
                           x, **kw)
    _same_result(fast, slow)
    for a, b in zip(fast.states, slow.states, strict=True):
        _same(a.h, b.h)


@settings(max_examples=40, deadline=None)
@given(problem=problems(kind="conv"))
def test_render_without_ghat_gives_the_same_rendering(problem):
    """Rendering that keeps ĝ only where asked (the pooled gate, in-place gates and Norm
    quotients elsewhere) gives the same g_0 and pooled renderings — exactly on numpy; on torch
    float64 to 1e-12 (the placed map's memory layout may differ, and with it the rounding of
    torch's convolution kernels) — and leaves the state and the top vector untouched."""
    model = problem.model
    joint = Sweep.reads(model, Options())[0]
    for conv in (lambda v: v, to_torch):
        params, state = conv(problem.params), conv(problem.state)
        top = model.top_vector(params, state.y)
        top0, z0 = top.copy() if conv is not to_torch else top.clone(), dict(state.z)
        g_all, full = model.render(params, state, top)
        g_few, few = model.render(params, state, top, keep_ghat=joint)
        if conv is to_torch:
            np.testing.assert_allclose(num(g_few), num(g_all), rtol=1e-12, atol=1e-12)
        else:
            _same(g_all, g_few)
        assert set(few.ghat) == set(joint) and set(few.gpool) == set(full.gpool)
        for k in few.gpool:
            np.testing.assert_allclose(num(few.gpool[k]), num(full.gpool[k]), rtol=1e-12,
                                       atol=1e-12)
        _same(top, top0)
        for k in z0:
            assert state.z[k] is z0[k]


@settings(max_examples=30, deadline=None)
@given(problem=problems(kind="conv", tau2=st.just(math.inf)))
def test_exact_h_step_is_the_rendering_when_tau2_is_infinite(problem):
    """λ = 1: h* = x̃ + (g_0 − x̃) is g_0 itself, not its rounding through x̃."""
    res = alternating_map(problem.model, problem.params, problem.x, cycles=2,
                          observed="level0", initial_state=problem.state, record="cycle")
    for state, g0 in zip(res.states[1:], res.renderings, strict=True):
        _same(state.h, g0)


def test_pool_memos_follow_in_place_writes():
    """The torch backend keeps the flat pool indices on the positions tensor and P_t of a
    pool_update result on the result; writing into either forgets them (version counter)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.randint(0, 4, (2, 3, 2, 2), generator=g)
    first = TO.pool_select(x, t, 2)
    np.testing.assert_array_equal(first.numpy(), NP.pool_select(x.numpy(), t.numpy(), 2))
    t.copy_(3 - t)
    np.testing.assert_array_equal(TO.pool_select(x, t, 2).numpy(),
                                  NP.pool_select(x.numpy(), t.numpy(), 2))
    # P_t of a pool_update result is remembered as the values written, until a write into it
    z = x > 0
    v = torch.randn(2, 3, 2, 2, generator=g) > 0
    out = TO.pool_update(z, t, v, 2)
    assert torch.equal(TO.pool_select(out, t, 2), v)
    out.logical_not_()
    np.testing.assert_array_equal(TO.pool_select(out, t, 2).numpy(), ~v.numpy())
    other = t.clone()
    assert torch.equal(TO.pool_select(out, other, 2), ~v)  # (another positions tensor)


@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_update_writes_in_place_only_into_owned_arrays_without_gradient(op):
    x, y = torch.rand(3, 4) + 1, torch.rand(4) + 1
    expected = {"+": x + y, "-": x - y, "*": x * y, "/": x / y}[op]
    a = x.clone()
    assert TO.update(a, op, y) is not a and torch.equal(a, x)
    out = TO.update(a, op, y, overwrite=True)
    assert out is a and torch.equal(out, expected)
    w = x.clone().requires_grad_(True)
    out = TO.update(w, op, y, overwrite=True)
    assert out is not w and torch.equal(out.detach(), expected) and torch.equal(w.detach(), x)
    n = x.numpy().copy()
    assert NP.update(n, op, y.numpy(), overwrite=True) is n
    np.testing.assert_array_equal(n, expected.numpy())


@contextlib.contextmanager
def _sweep_reads(fn):
    """``Sweep.reads`` (what the engine records of a rendering) replaced by ``fn``."""
    original = Sweep.__dict__["reads"]
    Sweep.reads = staticmethod(fn)
    try:
        yield
    finally:
        Sweep.reads = original


@pytest.mark.parametrize("name", sorted(OPTIONS))
@settings(max_examples=15, deadline=None)
@given(problem=problems(kind="conv"))
def test_sweep_on_rendering_signs_equals_sweep_on_values(name, problem):
    """Recording only sign(ĝ), sign(g) (int8) for the sweep gives the same latents, h and
    logits as recording the full renderings, exactly on numpy (ties at exact zeros included)."""
    kw = dict(cycles=3, options=OPTIONS[name], observed="level0", initial_state=problem.state,
              record="none")
    args = (problem.model, problem.params, problem.x)
    fast = alternating_map(*args, **kw)
    with _sweep_reads(lambda model, options: (None, False)):
        full = alternating_map(*args, **kw)
    _same_result(fast, full)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_a_state_edited_in_place_is_not_read_through_stale_memos(mode):
    """The torch backend remembers flat pool indices on a positions tensor, checked by its
    version counter; inference-mode tensors have none, so an edited state passed back as
    ``initial_state`` must be forgotten on entry (was 0.31 apart under inference_mode)."""
    from dgm import State
    model = DGM([L.Conv2d(1, 4, 3, padding=1), L.Switch(4), L.MaxPool(2),
                 L.Conv2d(4, 4, 3, padding=1), L.Switch(4), L.MaxPool(2), L.Flatten(),
                 L.Dense(16, 8), L.Switch(8)], classes=3, input_shape=(1, 8, 8))
    params = model.init("torch", seed=0, dtype=torch.float32)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with getattr(torch, mode)():
        state = alternating_map(model, params, x, cycles=1).state
        for t in state.t.values():
            t.copy_((t + 1) % 4)
        copy = State(h=state.h.clone(), y=state.y.clone(),
                     z={k: v.clone() for k, v in state.z.items()},
                     t={k: v.clone() for k, v in state.t.items()})
        edited = alternating_map(model, params, x, cycles=1, initial_state=state).logits[-1]
        fresh = alternating_map(model, params, x, cycles=1, initial_state=copy).logits[-1]
    assert torch.equal(edited, fresh)
