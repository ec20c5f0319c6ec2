"""Termination, self-consistency and invariances of the exact engine (dgm-math §4.3(b)(c);
catalogue §5.9, §5.10).

With ``until_fixed_point`` the exact engine reaches a fixed point within a bounded number of
cycles; one more cycle is a no-op; at the fixed point every block (each site, the class, h) is
optimal against brute force. The engine has no cross-example coupling (batch permutation
equivariance, batch of one = batched), relabelling the classes permutes everything, a constant
added to β changes nothing, and the gates are unchanged by positive per-channel rescaling of
the feedback.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference import Options, alternating_map, joint_step, t_step, z_step
from backends import backend_by_name
from dgm.testing import problems, tolerance
from tests.enumeration import class_objectives, enumerated_max

MAX_CYCLES = 40
NP = backend_by_name("numpy")


def run(problem, state=None, cycles=MAX_CYCLES, until=True, options=None, params=None,
        x=None):
    return alternating_map(problem.model, problem.params if params is None else params,
                           problem.x if x is None else x, cycles=cycles,
                           until_fixed_point=until, observed="level0",
                           options=options or Options(),
                           initial_state=problem.state if state is None else state,
                           record="cycle")


def assert_same_state(a, b, exact_h=True):
    np.testing.assert_array_equal(a.y, b.y)
    if exact_h:
        np.testing.assert_array_equal(a.h, b.h)
    else:
        np.testing.assert_allclose(a.h, b.h, rtol=1e-12, atol=1e-12)
    for k in a.z:
        np.testing.assert_array_equal(a.z[k], b.z[k])
    for k in a.t:
        np.testing.assert_array_equal(a.t[k], b.t[k])


@pytest.mark.parametrize("block", ["joint", "z_then_t"])
@settings(max_examples=150)
@given(problem=problems(max_side=3, max_units=5, max_batch=2))
def test_fixed_point_is_reached_and_block_optimal(block, problem):
    model, options = problem.model, Options(block=block)
    result = run(problem, options=options)
    assert bool(result.converged.all()), f"no fixed point within {MAX_CYCLES} cycles"
    fixed = result.state
    # one more cycle is a no-op
    again = run(problem, state=fixed, cycles=1, until=False, options=options)
    assert_same_state(fixed, again.state)
    assert bool(again.converged.all())
    # every block is optimal at the fixed point
    j = model.objective(problem.params, problem.x, fixed)
    eps = tolerance(problem, fixed)
    assert (j >= class_objectives(problem, fixed).max(-1) - eps).all()
    lam = 1.0 if math.isinf(model.tau2) else model.tau2 / (model.sigma2 + model.tau2)
    g0, _ = model.render(problem.params, fixed)
    np.testing.assert_allclose(fixed.h, problem.x + lam * (g0 - problem.x), rtol=0,
                               atol=1e-12 * (1 + np.abs(g0).max()))
    blocks = [(p,) for p in model.switch_sites] + [(p,) for p in model.pool_sites]
    blocks += [(s, p) for s, p in model.pool_partner.items()] if block == "joint" else []
    for sites in blocks:
        for n in range(len(problem.x)):
            best = enumerated_max(problem, fixed, sites, n)
            assert best is None or j[n] >= best - eps[n], (sites, j[n], best)


@given(problem=problems(max_batch=3, grids=(None,)), data=st.data())
def test_batch_permutation_equivariance_and_batch_of_one(problem, data):
    """No coupling between examples: permuting the batch permutes the result; each example run
    alone gives the batched result."""
    n = len(problem.x)
    perm = np.array(data.draw(st.permutations(range(n))))
    full = run(problem, cycles=3, until=False)
    s = problem.state
    permuted_state = type(s)(h=s.h[perm], y=s.y[perm], z={k: v[perm] for k, v in s.z.items()},
                             t={k: v[perm] for k, v in s.t.items()},
                             norm_scales={k: v[perm] for k, v in s.norm_scales.items()})
    permuted = run(problem, state=permuted_state, cycles=3, until=False, x=problem.x[perm])
    np.testing.assert_allclose(permuted.logits[-1], full.logits[-1][perm], rtol=1e-12,
                               atol=1e-12 * (1 + np.abs(full.logits[-1]).max()))
    np.testing.assert_array_equal(permuted.state.y, full.state.y[perm])
    for i in range(n):
        one = type(s)(h=s.h[i:i + 1], y=s.y[i:i + 1], z={k: v[i:i + 1] for k, v in s.z.items()},
                      t={k: v[i:i + 1] for k, v in s.t.items()},
                      norm_scales={k: v[i:i + 1] for k, v in s.norm_scales.items()})
        alone = run(problem, state=one, cycles=3, until=False, x=problem.x[i:i + 1])
        np.testing.assert_allclose(alone.logits[-1][0], full.logits[-1][i], rtol=1e-12,
                                   atol=1e-12 * (1 + np.abs(full.logits[-1]).max()))
        np.testing.assert_allclose(alone.state.h[0], full.state.h[i], rtol=1e-12, atol=1e-12)
        assert alone.state.y[0] == full.state.y[i]
        for k in s.z:
            np.testing.assert_array_equal(alone.state.z[k][0], full.state.z[k][i])


@given(problem=problems(grids=(None,)), data=st.data())
def test_class_relabelling_permutes_the_whole_run(problem, data):
    k = problem.model.classes
    perm = np.array(data.draw(st.permutations(range(k))))  # old class c is new class perm[c]
    inv = np.argsort(perm)
    params = dict(problem.params)
    params["head.weight"] = problem.params["head.weight"][inv]
    params["head.bias"] = problem.params["head.bias"][inv]
    base = run(problem, cycles=3, until=False)
    relabelled = run(problem, state=problem.state.replace(y=perm[problem.state.y]), cycles=3,
                     until=False, params=params)
    for a, b in zip(base.logits[1:], relabelled.logits[1:]):
        np.testing.assert_allclose(b[:, perm], a, rtol=1e-12, atol=1e-12 * (1 + np.abs(a).max()))
    np.testing.assert_array_equal(relabelled.state.y, perm[base.state.y])
    assert_same_state(base.state.replace(y=relabelled.state.y), relabelled.state, exact_h=False)


@given(problem=problems(grids=(None,)), c=st.floats(-20, 20))
def test_constant_added_to_beta_changes_nothing(problem, c):
    params = dict(problem.params)
    params["head.bias"] = problem.params["head.bias"] + c
    base = run(problem, cycles=3, until=False)
    shifted = run(problem, cycles=3, until=False, params=params)
    assert_same_state(base.state, shifted.state)
    for a, b in zip(base.logits[1:], shifted.logits[1:]):
        la = a - a.max(-1, keepdims=True)
        lb = b - b.max(-1, keepdims=True)
        np.testing.assert_allclose(lb - np.log(np.exp(lb).sum(-1, keepdims=True)),
                                   la - np.log(np.exp(la).sum(-1, keepdims=True)),
                                   rtol=0, atol=1e-10 * (1 + abs(c) + np.abs(a).max()))


@given(problem=problems(), options=st.sampled_from([Options(), Options(feedback="softmax"),
                                                    Options.original().with_(guard=True)]))
def test_recording_does_not_change_the_run(problem, options):
    """record="none" / "cycle" / "step" give bit-identical logits, renderings and states."""
    results = [alternating_map(problem.model, problem.params, problem.x, cycles=3,
                               options=options, record=record, observed="level0",
                               initial_state=problem.state)
               for record in ("none", "cycle", "step")]
    for other in results[1:]:
        assert_same_state(results[0].state, other.state)
        for a, b in zip(results[0].logits + results[0].renderings,
                        other.logits + other.renderings):
            np.testing.assert_array_equal(a, b)


@given(seed=st.integers(0, 2 ** 31), k=st.integers(1, 3), grid=st.booleans(),
       keep=st.booleans())
def test_gates_invariant_to_positive_channel_rescaling_of_feedback(seed, k, grid, keep):
    rng = np.random.default_rng(seed)
    shape = (2, 2, 2 * k, 2 * k)
    a, ghat = rng.uniform(-2, 2, shape), rng.uniform(-2, 2, shape)
    g = rng.uniform(-2, 2, (2, 2, 2, 2))
    if grid:
        a, ghat, g = np.round(a), np.round(ghat), np.round(g)
    c = rng.uniform(0.01, 100, (1, 2, 1, 1))
    z_old = rng.random(shape) < 0.5
    t_old = rng.integers(0, k * k, (2, 2, 2, 2))
    np.testing.assert_array_equal(z_step(NP, a, ghat * c, z_old, keep),
                                  z_step(NP, a, ghat, z_old, keep))
    win = NP.windows(a, k)
    np.testing.assert_array_equal(t_step(NP, win, g * c, t_old, keep),
                                  t_step(NP, win, g, t_old, keep))
    for x, y in zip(joint_step(NP, a, g * c, z_old, t_old, k, keep),
                    joint_step(NP, a, g, z_old, t_old, k, keep)):
        np.testing.assert_array_equal(x, y)


@settings(max_examples=60)
@given(problem=problems(max_side=3, max_units=5, max_batch=3))
def test_fixed_at_is_the_first_cycle_that_changed_nothing(problem):
    """``Result.fixed_at`` per example = the first k whose k-th cycle left the state as it was,
    read off separate runs of exactly k cycles (each tests only its last cycle)."""
    result = run(problem)
    k_max = result.cycles
    first = np.zeros(len(result.fixed_at), dtype=int)
    for k in range(1, k_max + 1):
        done = np.asarray(run(problem, cycles=k, until=False).converged)
        first = np.where((first == 0) & done, k, first)
    np.testing.assert_array_equal(result.fixed_at, first)
    assert bool(np.all((result.fixed_at > 0) == np.asarray(result.converged)))
    assert run(problem, until=False, cycles=2).fixed_at is None
