"""The torch backend's fused pool ops (``max_pool_positions``, ``min_pool_positions``,
``pool_select``, ``pool_place``, ``pool_update``, ``gate``) and its bit-level ``where`` are
exactly the protocol's window-based definitions (and torch.where): same positions (first
extremum in row-major order, ties included), same values, same gradients — against the numpy
float64 reference and against the generic protocol code run on torch tensors.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import Backend, backend_by_name

NP = backend_by_name("numpy")
TO = backend_by_name("torch")


@st.composite
def pool_cases(draw):
    """A map (N,C,kH',kW') on a coarse grid (many ties, exact zeros), window k, positions t."""
    k = draw(st.integers(1, 3))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    hp, wp = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 31)))
    levels = draw(st.sampled_from([2, 3, 1000]))
    x = np.round(rng.uniform(-1, 1, (n, c, hp * k, wp * k)) * levels) / levels
    t = rng.integers(0, k * k, (n, c, hp, wp))
    g = np.round(rng.uniform(-1, 1, (n, c, hp, wp)) * 2) / 2
    return x, k, t, g


def tt(a):
    return torch.from_numpy(np.asarray(a))


@settings(max_examples=60, deadline=None)
@given(case=pool_cases())
def test_extremum_positions_match_numpy_argmax(case):
    x, k, _, _ = case
    for fused, ref in ((TO.max_pool_positions, NP.max_pool_positions),
                       (TO.min_pool_positions, NP.min_pool_positions)):
        v, t = fused(tt(x), k)
        rv, rt = ref(x, k)
        assert not t.dtype.is_floating_point and t.dtype != torch.bool
        np.testing.assert_array_equal(t.numpy(), rt)
        np.testing.assert_array_equal(v.numpy(), rv)


@settings(max_examples=60, deadline=None)
@given(case=pool_cases())
def test_select_place_update_match_numpy(case):
    x, k, t, g = case
    np.testing.assert_array_equal(TO.pool_select(tt(x), tt(t), k).numpy(), NP.pool_select(x, t, k))
    np.testing.assert_array_equal(TO.pool_place(tt(g), tt(t), k).numpy(), NP.pool_place(g, t, k))
    z = x > 0
    np.testing.assert_array_equal(TO.pool_update(tt(z), tt(t), tt(g > 0), k).numpy(),
                                  NP.pool_update(z, t, g > 0, k))
    np.testing.assert_array_equal(TO.pool_select(tt(z), tt(t), k).numpy(), NP.pool_select(z, t, k))


@settings(max_examples=30, deadline=None)
@given(case=pool_cases(), leak=st.sampled_from([0.0, 0.1]))
def test_fused_gradients_equal_generic(case, leak):
    """Same values and same autograd gradients as the protocol's generic window code on torch."""
    x, k, t, g = case
    w = tt(np.random.default_rng(0).standard_normal(x.shape))
    for name, args in (("max_pool_positions", (k,)), ("min_pool_positions", (k,)),
                       ("pool_select", (tt(t), k))):
        outs = []
        for fn in (getattr(TO, name), getattr(Backend, name).__get__(TO)):
            xv = tt(x).clone().requires_grad_(True)
            out = fn(xv, *args)
            out = out[0] if isinstance(out, tuple) else out
            (out * tt(g)).sum().backward()
            outs.append((out.detach(), xv.grad))
        assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1]), name
    outs = []
    for fn in (TO.pool_place, Backend.pool_place.__get__(TO)):
        gv = tt(g).clone().requires_grad_(True)
        out = fn(gv, tt(t), k)
        (out * w).sum().backward()
        outs.append((out.detach(), gv.grad))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    z = tt(x > 0)
    outs = []
    for fn in (TO.gate, Backend.gate.__get__(TO)):
        xv = tt(x).clone().requires_grad_(True)
        out = fn(xv, z, leak)
        (out * w).sum().backward()
        outs.append((out.detach(), xv.grad))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channels_last_and_dtypes(dtype):
    """Positions do not depend on the memory format (indices are per-plane flat H·W)."""
    x = torch.randn(2, 3, 6, 8, dtype=dtype)
    v, t = TO.max_pool_positions(x, 2)
    v2, t2 = TO.max_pool_positions(x.contiguous(memory_format=torch.channels_last), 2)
    assert torch.equal(t, t2) and torch.equal(v, v2)
    np.testing.assert_array_equal(t.numpy(), NP.max_pool_positions(x.numpy(), 2)[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.int32,
                                   torch.int8, torch.uint8])
def test_where_selects_the_same_bits_as_torch_where(dtype):
    """The torch backend's ``where`` (a selection on the operands' bits for same-shape,
    same-dtype CPU tensors) gives exactly torch.where's bits: NaN, ±0, ±inf included; other
    operands (broadcast, mixed dtypes) go to torch.where itself."""
    g = torch.Generator().manual_seed(0)
    shape = (3, 4, 5, 6)
    cond = torch.rand(shape, generator=g) > 0.5
    if dtype.is_floating_point:
        pool = torch.tensor([float("nan"), -0.0, 0.0, float("inf"), -float("inf"), 1.5, -2.25],
                            dtype=dtype)
        a = pool[torch.randint(0, len(pool), shape, generator=g)]
        b = pool[torch.randint(0, len(pool), shape, generator=g)].contiguous(
            memory_format=torch.channels_last)
        bits = {torch.float32: torch.int32, torch.float64: torch.int64}[dtype]
        same = lambda x, y: torch.equal(x.view(bits), y.view(bits))  # noqa: E731
    else:
        hi = 255 if dtype == torch.uint8 else 100
        a = torch.randint(0 if dtype == torch.uint8 else -hi, hi, shape, generator=g).to(dtype)
        b = torch.randint(0, hi, shape, generator=g).to(dtype)
        same = torch.equal
    assert same(TO.where(cond, a, b), torch.where(cond, a, b))
    assert same(TO.where(~cond, a, b), torch.where(~cond, a, b))
    # broadcast and mixed dtypes: torch.where's own promotion
    row = b[:1]
    assert same(TO.where(cond, a, row), torch.where(cond, a, row))
    assert TO.where(cond, a, b.to(torch.float64)).dtype == torch.where(
        cond, a, b.to(torch.float64)).dtype
