"""Observed classes and the per-class generative classifier (issue 15): with ``observed_y``
the class never moves and J_G still never decreases after any step; ``class_scores`` is the
B log joint at each class's own MAP state, scored by the program interpreter (an independent
computation), with h = x̃ when τ² = ∞."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dgm
from backends import DGMError
from dgm.program import program_log_joint
from inference import Options, alternating_map, class_scores, evidence_state
from dgm.testing import problems, real_conv_problems, tolerance

PROBLEMS = st.one_of(problems(max_batch=3), real_conv_problems())


@settings(max_examples=30, deadline=None)
@given(problem=PROBLEMS, cycles=st.integers(1, 3))
def test_observed_class_is_kept_and_j_never_decreases(problem, cycles):
    y = problem.rng.integers(0, problem.model.classes, len(problem.x))
    res = alternating_map(problem.model, problem.params, problem.x, cycles=cycles,
                          record="step", observed="level0", observed_y=y)
    steps = res.trajectory.steps
    for s in steps:
        assert (np.asarray(s.y) == y).all()
    for before, after in zip(steps, steps[1:]):
        eps = np.maximum(tolerance(problem, before.state), tolerance(problem, after.state))
        assert (np.asarray(before.objective) - np.asarray(after.objective) <= eps).all()


@settings(max_examples=30, deadline=None)
@given(problem=PROBLEMS, cycles=st.integers(0, 2))
def test_class_scores_are_the_log_joint_at_each_class_map_state(problem, cycles):
    model, params, x = problem.model, problem.params, problem.x
    scores = class_scores(model, params, x, cycles=cycles, observed="level0")
    assert scores.shape == (len(x), model.classes)
    for k in range(model.classes):
        res = alternating_map(model, params, x, cycles=cycles, record="none", observed="level0",
                              observed_y=np.full(len(x), k))
        state = res.state.replace(h=x) if math.isinf(model.tau2) else res.state
        ref = program_log_joint(model, params, x, state, "B")[0]
        np.testing.assert_allclose(scores[:, k], ref, rtol=1e-10, atol=1e-10)


def test_evidence_state_sets_h_to_the_observation_only_without_tau2():
    m_inf = dgm.DGM([dgm.layers.Dense(2, 2), dgm.layers.Switch(2)], classes=2)
    m_fin = dgm.DGM([dgm.layers.Dense(2, 2), dgm.layers.Switch(2)], classes=2, tau2=0.5)
    x = np.ones((1, 2))
    st_ = dgm.State(h=np.zeros((1, 2)), y=np.zeros(1, dtype=int), z={"1": np.ones((1, 2), bool)},
                    t={})
    assert (evidence_state(m_inf, x, st_).h == x).all()
    assert (evidence_state(m_fin, x, st_).h == 0).all()


def test_observed_y_rejects_soft_feedback_and_bad_classes():
    m = dgm.DGM([dgm.layers.Dense(2, 2), dgm.layers.Switch(2)], classes=2)
    p = m.init("numpy")
    x = np.ones((3, 2))
    with pytest.raises(DGMError, match="hard feedback"):
        alternating_map(m, p, x, options=Options(feedback="softmax"), observed_y=np.zeros(3, int))
    with pytest.raises(DGMError, match="observed_y"):
        alternating_map(m, p, x, observed_y=np.full(3, 2))
