"""Block optimality of the exact steps against brute force (dgm-math §3.2–3.4; catalogue §5.6).

For every step the engine records, the state after the step must attain the maximum of J over
that step's block with everything else held at the state before the step:
z-step (AdaReLU), t-step (AdaPool), joint (z, t) block, y-step — by enumerating the block
(≤ 2¹² configurations; larger sites are skipped); h-step — J(h*) ≥ J(h* + δ) for random δ and
h* agrees with a numeric optimiser.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from inference import Options, alternating_map
from dgm.testing import problems, tolerance
from tests.enumeration import class_objectives, enumerated_max


def step_sites(model, name, block):
    if name in model.switch_sites and block == "joint" and name in model.pool_partner:
        return (name, model.pool_partner[name])
    return (name,)


@pytest.mark.parametrize("block", ["joint", "z_then_t"])
@settings(max_examples=150)
@given(data=st.data())
def test_site_and_class_steps_attain_the_block_maximum(block, data):
    problem = data.draw(problems(max_side=3, max_units=5, max_batch=2))
    model = problem.model
    result = alternating_map(model, problem.params, problem.x, cycles=2, record="step",
                             options=Options(block=block), observed="level0",
                             initial_state=problem.state)
    steps = result.trajectory.steps
    checked = 0
    for before, after in zip(steps, steps[1:]):
        if after.name == "h":
            continue
        eps = tolerance(problem, after.state)
        for n in range(problem.x.shape[0]):
            if after.name == "y":
                best = class_objectives(problem, before.state)[n].max()
            else:
                best = enumerated_max(problem, before.state,
                                      step_sites(model, after.name, block), n)
                if best is None:
                    continue
            checked += 1
            assert after.objective[n] >= best - eps[n], (
                f"step {after.cycle}:{after.name} reached {after.objective[n]!r}, "
                f"the block maximum is {best!r}")
    assert checked > 0


@settings(max_examples=100)
@given(problem=problems(max_side=3, max_units=4, max_batch=1))
def test_h_step_is_the_exact_maximiser(problem):
    """J(h*) ≥ J(h* + δ) for random δ, and h* matches BFGS on −J(h)."""
    model, params, x = problem.model, problem.params, problem.x
    result = alternating_map(model, params, x, cycles=1, record="step", observed="level0",
                             initial_state=problem.state)
    after = next(s for s in result.trajectory.steps if s.name == "h").state
    j_star = model.objective(params, x, after)[0]
    eps = tolerance(problem, after)[0]
    for scale in (1e-3, 1e-1, 1.0):
        delta = problem.rng.normal(size=x.shape) * scale
        assert j_star >= model.objective(params, x, after.replace(h=after.h + delta))[0] - eps

    def neg_j(v):
        return -model.objective(params, x, after.replace(h=v.reshape(x.shape)))[0]

    opt = minimize(neg_j, problem.state.h.ravel(), method="BFGS", options={"gtol": 1e-9})
    np.testing.assert_allclose(after.h.ravel(), opt.x, atol=1e-4 * (1 + np.abs(opt.x).max()))
    assert j_star >= -opt.fun - eps
