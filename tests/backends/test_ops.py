"""The backend op protocol (dgm-math §1.1, §5.1): every linear op and its adjoint satisfy
⟨C u, v⟩ = ⟨u, Cᵀ v⟩ on both backends (conv for all stride/padding combinations, odd sizes;
dense; select/place; windows/unwindows; avg pool; flatten; frozen norm; whole skeletons with
residual blocks through the traversal), and the torch backend agrees with the numpy float64
reference to 1e-10 on every op.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from backends import backend_by_name
from dgm import traverse as T
from dgm.hooks import FixedLatents, NormPolicy
from dgm import layers as L
from dgm.testing import problems, to_torch

NP = backend_by_name("numpy")
TO = backend_by_name("torch")
BACKENDS = pytest.mark.parametrize("ops", [NP, TO], ids=["numpy", "torch"])


def arr(ops, rng, shape):
    v = rng.uniform(-2, 2, size=tuple(shape))
    return v if ops is NP else torch.from_numpy(v)


def num(x):
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def inner(a, b) -> float:
    return float((num(a) * num(b)).sum())


def assert_adjoint(fwd, u, adj, v):
    lhs, rhs = inner(fwd, v), inner(u, adj)
    assert abs(lhs - rhs) <= 1e-11 * (1 + np.abs(num(fwd)).sum() * np.abs(num(v)).max()
                                       + np.abs(num(u)).sum() * np.abs(num(adj)).max()), \
        (lhs, rhs)


@st.composite
def conv_cases(draw):
    """(x shape, w shape, stride, padding) with odd and even sizes; output non-empty."""
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    p, s = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    k = draw(st.integers(1, 4))
    h = draw(st.integers(max(1, k - 2 * p), 9))
    w = draw(st.integers(max(1, k - 2 * p), 9))
    return (n, c, h, w), (o, c, k, k), s, p


@BACKENDS
@given(case=conv_cases(), seed=st.integers(0, 2 ** 31))
def test_conv2d_adjoint(ops, case, seed):
    xs, ws, s, p = case
    rng = np.random.default_rng(seed)
    x, w = arr(ops, rng, xs), arr(ops, rng, ws)
    y = ops.conv2d(x, w, s, p)
    assert tuple(y.shape[2:]) == tuple((d + 2 * p - ws[2]) // s + 1 for d in xs[2:])
    v = arr(ops, rng, y.shape)
    back = ops.conv2d_adjoint(v, w, s, p, xs[2:])
    assert tuple(back.shape) == xs
    assert_adjoint(y, x, back, v)


@BACKENDS
@given(n=st.integers(1, 3), i=st.integers(1, 6), o=st.integers(1, 6), seed=st.integers(0, 2 ** 31))
def test_dense_adjoint(ops, n, i, o, seed):
    rng = np.random.default_rng(seed)
    x, w = arr(ops, rng, (n, i)), arr(ops, rng, (o, i))
    y = ops.dense(x, w)
    v = arr(ops, rng, y.shape)
    assert_adjoint(y, x, ops.dense_adjoint(v, w), v)


@st.composite
def pooled_shapes(draw):
    k = draw(st.integers(1, 3))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 2)), k * draw(st.integers(1, 3)),
            k * draw(st.integers(1, 3))), k


@BACKENDS
@given(case=pooled_shapes(), seed=st.integers(0, 2 ** 31))
def test_pool_ops_adjoint(ops, case, seed):
    """windows/unwindows (a permutation: adjoint = inverse), select P_t / place U_t,
    avg pool / its adjoint, nearest upsampling = k² × that adjoint."""
    shape, k = case
    rng = np.random.default_rng(seed)
    x = arr(ops, rng, shape)
    win = ops.windows(x, k)
    v = arr(ops, rng, win.shape)
    assert_adjoint(win, x, ops.unwindows(v, k), v)
    np.testing.assert_array_equal(num(ops.unwindows(win, k)), num(x))
    t_np = rng.integers(0, k * k, size=win.shape[:-1])
    t = t_np if ops is NP else torch.from_numpy(t_np)
    sel = ops.select(win, t)
    g = arr(ops, rng, sel.shape)
    assert_adjoint(sel, win, ops.place(g, t, k * k), g)
    avg = ops.avg_pool(x, k)
    g = arr(ops, rng, avg.shape)
    adj = ops.avg_pool_adjoint(g, k)
    assert_adjoint(avg, x, adj, g)
    np.testing.assert_allclose(num(ops.upsample_nearest(g, k)), k * k * num(adj), rtol=1e-14)


@BACKENDS
@given(case=pooled_shapes(), seed=st.integers(0, 2 ** 31))
def test_flatten_and_frozen_norm_adjoint(ops, case, seed):
    shape, _ = case
    rng = np.random.default_rng(seed)
    x = arr(ops, rng, shape)
    flat = L.Flatten()
    y = flat.apply(ops, {}, x)
    v = arr(ops, rng, y.shape)
    assert_adjoint(y, x, flat.adjoint(ops, {}, v, shape[1:]), v)
    scales = {"0": ops.channel_rms(arr(ops, rng, shape))}
    norm = NormPolicy(ops, "frozen", scales)
    y = norm("0", x, "forward")
    v = arr(ops, rng, y.shape)
    assert_adjoint(y, x, norm("0", v, "render"), v)


@given(problem=problems(), backend=st.sampled_from(["numpy", "torch"]))
def test_whole_skeleton_is_adjoint_to_its_rendering(problem, backend):
    """Bias-free gated forward (fixed z, t, frozen norm) level 0 → top is the adjoint of the
    rendering top → level 0: covers residual blocks, projections, pools, norm, flatten, leak."""
    model = problem.model
    params = {k: (v * 0 if k.endswith("bias") else v) for k, v in problem.params.items()}
    state, u = problem.state, problem.x
    v = problem.values((u.shape[0], model.top_features))
    if backend == "torch":
        params, state, u, v = to_torch(params), to_torch(state), to_torch(u), to_torch(v)
    ops = backend_by_name(backend)
    hooks = lambda: FixedLatents(ops, state.z, state.t, model.norm_policy(ops, state))
    fwd = T.forward(ops, model.layers, params, u, hooks(), "layers.")
    back = T.render(ops, model.layers, params, v, hooks(), "layers.", model.shapes)
    assert tuple(back.shape) == tuple(u.shape)
    assert_adjoint(fwd, u, back, v)


# -- numpy vs torch float64 ---------------------------------------------------------------------

def agree(a, b):
    a, b = num(a), num(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10)


@given(case=conv_cases(), seed=st.integers(0, 2 ** 31))
def test_conv_numpy_torch_agree(case, seed):
    xs, ws, s, p = case
    rng = np.random.default_rng(seed)
    x, w = rng.uniform(-2, 2, xs), rng.uniform(-2, 2, ws)
    y = NP.conv2d(x, w, s, p)
    agree(y, TO.conv2d(torch.from_numpy(x), torch.from_numpy(w), s, p))
    g = rng.uniform(-2, 2, y.shape)
    agree(NP.conv2d_adjoint(g, w, s, p, xs[2:]),
          TO.conv2d_adjoint(torch.from_numpy(g), torch.from_numpy(w), s, p, xs[2:]))


@given(case=pooled_shapes(), seed=st.integers(0, 2 ** 31), grid=st.sampled_from([None, 1.0]))
def test_elementwise_and_pool_ops_numpy_torch_agree(case, seed, grid):
    shape, k = case
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, shape)
    if grid:  # ties: both backends must pick the same (first) arg-max/arg-min
        x = np.round(x)
    big = x * 500.0  # softplus/logsumexp far from 0 (|u| up to 1e3)
    tx, tbig = torch.from_numpy(x), torch.from_numpy(big)
    for op in ("softplus", "channel_rms"):
        agree(getattr(NP, op)(big), getattr(TO, op)(tbig))
    for axis in (0, -1):
        agree(NP.logsumexp(big, axis), TO.logsumexp(tbig, axis))
    agree(NP.log_softmax(big, -1), TO.log_softmax(tbig, -1))
    agree(NP.batch_dot(x, big), TO.batch_dot(tx, tbig))
    agree(NP.channel_rms(x[:, :, 0, 0]), TO.channel_rms(tx[:, :, 0, 0]))
    win, twin = NP.windows(x, k), TO.windows(tx, k)
    agree(win, twin)
    for op in ("argmax", "argmin"):
        t, tt = getattr(NP, op)(win, -1), getattr(TO, op)(twin, -1)
        np.testing.assert_array_equal(num(tt), t)
        agree(NP.select(win, t), TO.select(twin, tt))
        agree(NP.place(NP.select(win, t), t, k * k), TO.place(TO.select(twin, tt), tt, k * k))
    agree(NP.unwindows(win, k), TO.unwindows(twin, k))
    agree(NP.avg_pool(x, k), TO.avg_pool(tx, k))
    agree(NP.avg_pool_adjoint(x, k), TO.avg_pool_adjoint(tx, k))
    agree(NP.upsample_nearest(x, k), TO.upsample_nearest(tx, k))
    w = rng.uniform(-2, 2, (3, x.shape[-1]))
    agree(NP.dense(x[:, 0, 0], w), TO.dense(tx[:, 0, 0], torch.from_numpy(w)))
    agree(NP.dense_adjoint(x[:, 0, 0, :1], w[:1]), TO.dense_adjoint(tx[:, 0, 0, :1],
                                                                    torch.from_numpy(w[:1])))
    idx = rng.integers(0, 4, size=(x.shape[0],))
    agree(NP.one_hot(idx, 4, x), TO.one_hot(torch.from_numpy(idx), 4, tx))


@pytest.mark.parametrize("u", [1e3, -1e3, 0.0, 40.0, -40.0])
def test_softplus_is_stable_far_from_zero(u):
    """sp(u) = max(u, 0) + log1p(e^{−|u|}): finite and exact at |u| = 1e3 on both backends."""
    ref = max(u, 0.0) + np.log1p(np.exp(-abs(u)))
    for ops, x in ((NP, np.array([u])), (TO, torch.tensor([u], dtype=torch.float64))):
        out = num(ops.softplus(x))
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, [ref], rtol=1e-15)
