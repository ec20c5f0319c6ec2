"""Monotonicity of the alternating-MAP engine (dgm-math §4.3(a), §4.4, §4.5; catalogue §5.7, §5.8,
§5.12): J_G never decreases after any single exact step, from arbitrary start states; the soft
variant's free energy F never decreases and the class marginal logsumexp_y J never decreases
across cycles; guarded heuristics never decrease J.

Tolerance ε = 1e-10·(1 + Σ|terms of J|). Each property runs ``MONOTONE_EXAMPLES`` examples.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dgm import DGM, State, layers as L
from inference import Options, alternating_map
from tests.conftest import MONOTONE_EXAMPLES
from dgm.testing import Problem, check_trajectory, problems, real_conv_problems, tolerance
from tests.enumeration import class_objectives

CYCLES = 3
OBS = {"with_obs": st.floats(0.1, 10.0), "without_obs": st.just(math.inf)}


def assert_steps_non_decreasing(problem, result, names=None):
    """J (or F) after every recorded step ≥ J before it − ε, per example
    (``dgm.testing.check_trajectory``); ``names``: steps that must have been recorded."""
    check_trajectory(problem, result.trajectory)
    if names is not None:
        assert set(names) <= {s.name for s in result.trajectory.steps}


def run(problem, options, cycles=CYCLES, state=None):
    return alternating_map(problem.model, problem.params, problem.x, cycles=cycles,
                           options=options, record="step", observed="level0",
                           initial_state=problem.state if state is None else state)


@pytest.mark.parametrize("obs", sorted(OBS))
@pytest.mark.parametrize("block", ["joint", "z_then_t"])
@settings(max_examples=MONOTONE_EXAMPLES)
@given(data=st.data())
def test_exact_engine_every_step(block, obs, data):
    """Hard y, exact steps, arbitrary start: every sub-step (h, each site, y) keeps J ≥ J − ε."""
    problem = data.draw(problems(tau2=OBS[obs]))
    result = run(problem, Options(block=block))
    expected = {"h", "y"} | set(problem.model.switch_sites)
    assert_steps_non_decreasing(problem, result, expected)


REAL_NET_OPTIONS = {
    "joint": Options(), "z_then_t": Options(block="z_then_t"),
    "soft": Options(feedback="softmax"), "original+guard": Options.original().with_(guard=True),
}


@settings(max_examples=MONOTONE_EXAMPLES)
@given(problem=real_conv_problems(), name=st.sampled_from(sorted(REAL_NET_OPTIONS)))
def test_real_conv_net(problem, name):
    """The same on the shapes of a 2-conv+pool+dense net on 8×8 with He-initialised weights:
    exact hard (joint / z-then-t), soft (F) and the guarded released recipe."""
    assert_steps_non_decreasing(problem, run(problem, REAL_NET_OPTIONS[name]))


@settings(max_examples=MONOTONE_EXAMPLES)
@given(problem=problems(), start=st.sampled_from(["softmax", "random_q"]),
       block=st.sampled_from(["joint", "z_then_t"]))
def test_soft_variant_free_energy(problem, start, block):
    """Soft feedback (§4.4): F never decreases per step; right after S_q, F = logsumexp_y J;
    the class marginal logsumexp_y J never decreases from cycle to cycle."""
    model = problem.model
    state = problem.state
    if start == "random_q":  # an arbitrary class distribution, not the softmax of the logits
        q = problem.rng.dirichlet(np.full(model.classes, 0.5), size=problem.x.shape[0])
        state = state.replace(q=q)
    result = run(problem, Options(feedback="softmax", block=block), state=state)
    assert_steps_non_decreasing(problem, result)

    def marginal(s):
        js = class_objectives(problem, s)
        m = js.max(-1)
        return m + np.log(np.exp(js - m[:, None]).sum(-1))

    first = result.trajectory.steps[0].state
    marginals = [(marginal(first), tolerance(problem, first))] if start == "softmax" else []
    for step in result.trajectory.steps:
        if step.name == "y":
            eps = tolerance(problem, step.state)
            m = marginal(step.state)
            assert (np.abs(np.asarray(step.objective) - m) <= eps).all()
            marginals.append((m, eps))
    for (before, eps_b), (after, eps_a) in zip(marginals, marginals[1:]):
        assert (after >= before - np.maximum(eps_a, eps_b)).all()


GUARDED = {
    "original+guard": Options.original().with_(guard=True),
    "original_eta0.5+guard": Options.original(eta=0.5).with_(guard=True),
    "blend+guard": Options(blend=0.3, guard=True),
    "blend_z_then_t+guard": Options(blend=0.6, block="z_then_t", guard=True),
    "logits+guard": Options(feedback="logits", guard=True),
    "damped+guard": Options(h_update="damped", eta=0.3, guard=True),
    "original_h+guard": Options(h_update="original", eta=0.5, guard=True),
    "ties_off+guard": Options(ties="off", guard=True),
    "soft+blend+guard": Options(feedback="softmax", blend=0.3, guard=True),
    "soft+z_then_t+blend+guard": Options(feedback="softmax", block="z_then_t", blend=0.5,
                                         guard=True),
    "soft+original_h+guard": Options(feedback="softmax", h_update="original", eta=0.5,
                                     guard=True),
}


# found once every variant got its own 300 examples (issue 16): J falls at a guarded h-step of
# the η = 0.5 released recipe since 7fe6132 (faithful CNN-F norm placement); passes before it.
# Reproduce: @reproduce_failure('6.170.27', b'AXicc2R0BEFmRyYYyejI4AgRBHIYgBwGoAgDCDFr2H9gAAN'
#                                b'HBjjThZE10xqkBQBfLAmP') on this test with name "original_eta0.5+guard"
REGRESSED: dict = {}


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=REGRESSED[n], strict=False))
    if n in REGRESSED else n for n in sorted(GUARDED)])
@settings(max_examples=MONOTONE_EXAMPLES)
@given(problem=problems())
def test_guarded_heuristics_never_decrease(problem, name):
    """§4.5/§5.12: each heuristic proposal accepted only if J does not decrease (every variant
    gets its own ``MONOTONE_EXAMPLES`` examples: parametrized, not drawn)."""
    assert_steps_non_decreasing(problem, run(problem, GUARDED[name]))


def test_every_guarded_variant_gets_its_own_examples():
    """issue 16 case 10: drawn with ``sampled_from`` the 11 variants shared 300 examples."""
    marks = [m for m in test_guarded_heuristics_never_decrease.pytestmark
             if m.name == "parametrize"]
    names = [p.values[0] if hasattr(p, "values") else p for p in marks[0].args[1]]
    assert len(marks) == 1 and marks[0].args[0] == "name" and names == sorted(GUARDED)
    given_settings = test_guarded_heuristics_never_decrease._hypothesis_internal_use_settings
    assert given_settings.max_examples >= MONOTONE_EXAMPLES >= 300


ASCENT = {
    "damped": lambda eta: Options(h_update="damped", eta=eta),
    "damped_soft": lambda eta: Options(feedback="softmax", h_update="damped", eta=eta),
    "ties_off": lambda eta: Options(ties="off"),
    "ties_off_z_then_t": lambda eta: Options(ties="off", block="z_then_t"),
    "ties_off_soft": lambda eta: Options(feedback="softmax", ties="off"),
}


@settings(max_examples=MONOTONE_EXAMPLES)
@given(problem=problems(), name=st.sampled_from(sorted(ASCENT)), eta=st.floats(0.05, 1.95))
def test_other_ascent_steps_are_monotone(problem, name, eta):
    """Unguarded but still monotone (§4.2, §4.5): h ← h + η(h* − h) with 0 < η < 2 is an ascent
    step on the concave quadratic; CNN-F's tie rule (zero feedback switches off, any window
    position at g = 0) picks another maximiser of each block."""
    assert_steps_non_decreasing(problem, run(problem, ASCENT[name](eta)))


def soft_blend_guard_fallback():
    """Found by hypothesis (shrunk and hand-reduced): with soft feedback the guard's fallback
    used the one-hot rendering of y instead of the mixture Aᵀq, so a rejected blend proposal
    (a = −0.05, ĝ_q = 0.8: blended value > 0) fell back to a step that also switched the unit
    on (ĝ_y = −1), decreasing F by 0.04. Fixed in inference/_engine.py."""
    model = DGM([L.Dense(1, 1), L.Switch(1)], classes=2, sigma2=1.0, tau2=1.0)
    params = {"layers.0.weight": np.ones((1, 1)), "layers.1.bias": np.zeros(1),
              "head.weight": np.array([[1.0], [-1.0]]), "head.bias": np.zeros(2)}
    x = np.array([[-0.1]])
    state = State(h=x, y=np.array([1]), z={"1": np.zeros((1, 1), bool)}, t={},
                  q=np.array([[0.9, 0.1]]))
    problem = Problem(model, params, x, state, np.random.default_rng(0), None)
    return problem, Options(feedback="softmax", blend=0.1, guard=True)


PINNED = {"soft_blend_guard_fallback_used_onehot_rendering": soft_blend_guard_fallback}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_counterexamples(name):
    problem, options = PINNED[name]()
    assert_steps_non_decreasing(problem, run(problem, options, cycles=1))
