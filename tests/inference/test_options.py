"""CNN-F options (dgm-math §3.5, §3.6, §4.5, §4.7; catalogue §5.11, §5.13).

* With the compatibility options at their exact values the engine is bit-identical to the
  exact engine.
* An independent reference of CNN-F's forward rules — AdaReLU: blend x ← x + r(g − x), pass x iff
  x·g > 0; AdaPool: window max where g > 0, min where g < 0, 0 where g = 0 — agrees with the
  engine's forward under ``Options.original()``'s block/ties settings (logit feedback, damped h).
* The worked examples: Ex. 1 and Ex. 2 numbers; Ex. 3 (damped h with T_obs decreases J at step
  8), Ex. 4 (per-layer blend) and Ex. 5 (logit feedback) are regression tests that *assert* the
  decrease — the monotonicity theorem is about exact/guarded steps only.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from backends import backend_by_name
from dgm import DGM, State, layers as L
from dgm import traverse as T
from inference import Options, alternating_map, joint_step, z_step
from dgm.testing import TAU2, problems

NP = backend_by_name("numpy")
LOG_HALF = math.log(0.5)


def run(problem, options, cycles=3, **kw):
    return alternating_map(problem.model, problem.params, problem.x, cycles=cycles,
                           options=options, record="step", observed="level0",
                           initial_state=problem.state, **kw)


def assert_bit_identical(a, b):
    assert a.trajectory.names() == b.trajectory.names()
    for sa, sb in zip(a.trajectory.steps, b.trajectory.steps):
        np.testing.assert_array_equal(sa.objective, sb.objective)
        np.testing.assert_array_equal(sa.state.h, sb.state.h)
        np.testing.assert_array_equal(sa.state.y, sb.state.y)
        for k in sa.state.z:
            np.testing.assert_array_equal(sa.state.z[k], sb.state.z[k])
        for k in sa.state.t:
            np.testing.assert_array_equal(sa.state.t[k], sb.state.t[k])
    for la, lb in zip(a.logits, b.logits):
        np.testing.assert_array_equal(la, lb)
    for ga, gb in zip(a.renderings, b.renderings):
        np.testing.assert_array_equal(ga, gb)


EXACT_VALUES = {
    "explicit_defaults": (Options(feedback="onehot", h_update="exact", blend=0.0, ties="keep"),
                          Options()),
    "original_at_exact_values": (Options.original().with_(feedback="onehot", h_update="exact",
                                                          blend=0.0, ties="keep"),
                                 Options(block="z_then_t")),
    "guard_on_exact": (Options(guard=True), Options()),
    "guard_on_exact_soft": (Options(feedback="softmax", guard=True), Options(feedback="softmax")),
    "eta_ignored_by_exact_h": (Options(eta=1.7), Options()),
}


@pytest.mark.parametrize("name", sorted(EXACT_VALUES))
@given(problem=problems())
def test_compat_options_at_exact_values_are_bit_identical(name, problem):
    compat, exact = EXACT_VALUES[name]
    assert compat.is_exact
    assert_bit_identical(run(problem, compat), run(problem, exact))


UNGUARDED = {
    "released_recipe": Options.original(),
    "logit_feedback": Options(feedback="logits"),
    "per_layer_blend": Options(blend=0.3),
    "cnnf_h_update_with_obs": Options(h_update="original", eta=0.5),
}


@pytest.mark.parametrize("name", sorted(UNGUARDED))
def test_unguarded_heuristics_are_not_monotone(name):
    """§3.6 / §5.13: hypothesis finds a run where the heuristic decreases J at some step — the
    monotonicity property (tests/inference/test_monotone.py) is about exact/guarded steps only."""
    def decreases(problem):
        steps = run(problem, UNGUARDED[name]).trajectory.steps
        j = np.array([s.objective for s in steps])
        return bool((np.diff(j, axis=0) < -1e-6 * (1 + np.abs(j[:-1]))).any())

    tau2 = st.floats(0.1, 10.0) if name == "cnnf_h_update_with_obs" else TAU2
    find(problems(tau2=tau2), decreases, settings=settings(max_examples=500, database=None,
                                                          phases=[Phase.generate]))


# -- independent reference of CNN-F's forward rules ---------------------------------------------

def without_leak(layers):
    """The same skeleton with every Switch leak set to 0 (CNN-F has no leaky units)."""
    out = []
    for layer in layers:
        if isinstance(layer, L.Switch):
            layer = dataclasses.replace(layer, leak=0.0)
        elif isinstance(layer, L.Residual):
            layer = dataclasses.replace(layer, body=without_leak(layer.body),
                                        preact=without_leak(layer.preact))
        out.append(layer)
    return tuple(out)


class CNNFRules:
    """CNN-F's AdaReLU/AdaPool forward (original-cnnf.md A.1) given the stored feedback."""

    def __init__(self, ghat, gpool, blend, norm):
        self.ghat, self.gpool, self.blend, self.norm = ghat, gpool, blend, norm

    def switch(self, path, layer, x):
        g = self.ghat[path]
        x = x + self.blend * (g - x)
        return x * (x * g > 0)

    def pool(self, path, layer, x):
        g, k = self.gpool[path], layer.kernel_size
        if x.ndim == 5:  # hooks that receive the (N,C,H',W',k²) windows instead of the map
            lo, hi = x.min(-1), x.max(-1)
        else:
            n, c, h, w = x.shape
            win = x.reshape(n, c, h // k, k, w // k, k)
            lo, hi = win.min((3, 5)), win.max((3, 5))
        return np.where(g > 0, hi, np.where(g < 0, lo, 0.0))


@pytest.mark.parametrize("recipe", ["original", "original_eta0.5", "gate_then_pool_ties_off"])
@given(problem=problems(tau2=st.just(math.inf)))
def test_engine_forward_matches_cnnf_reference(recipe, problem):
    options = {"original": Options.original(), "original_eta0.5": Options.original(eta=0.5),
               "gate_then_pool_ties_off": Options(block="z_then_t", ties="off")}[recipe]
    m = problem.model
    model = DGM(without_leak(m.layers), m.classes, sigma2=m.sigma2, tau2=m.tau2,
                input_shape=m.input_shape, norm=m.norm)
    problem = dataclasses.replace(problem, model=model)
    result = run(problem, options, cycles=1)
    # reference: feedback pass from the previous logits (or one-hot), h update, CNN-F forward
    state, params = problem.state, problem.params
    prev = model.logits(params, state)
    top = prev @ params["head.weight"] if options.feedback == "logits" else None
    g0, rendered = model.render(params, state, top)
    x = problem.x
    h = state.h + options.eta * (g0 - state.h) if options.h_update == "original" else \
        x + 1.0 * (g0 - x)  # λ = 1 at τ² = ∞
    rules = CNNFRules(rendered.ghat, rendered.gpool, options.blend,
                      model.norm_policy(NP, state))
    logits = model.head(params, T.forward(NP, model.layers, params, h / model.sigma2, rules,
                                          "layers."))
    np.testing.assert_allclose(result.logits[1], logits, rtol=1e-12,
                               atol=1e-12 * (1 + np.abs(logits).max()))


# -- worked examples (dgm-math §4.7) -----------------------------------------------------------

def ex1_model(tau2):
    model = DGM([L.Dense(2, 2), L.Switch(2)], classes=2, sigma2=1.0, tau2=tau2)
    params = {"layers.0.weight": np.eye(2), "layers.1.bias": np.array([-0.2, 0.1]),
              "head.weight": np.array([[1.2, 0.5], [1.0, -1.0]]),
              "head.bias": np.full(2, LOG_HALF)}
    return model, params


EX1_H = np.array([[0.8, -0.3]])


def test_ex1_table_and_exact_z_steps():
    model, params = ex1_model(math.inf)
    table = {(0, 0): (0.0, 0.0), (0, 1): (-0.10, 0.20), (1, 0): (0.72, 0.60),
             (1, 1): (0.62, 0.80)}
    for z, row in table.items():
        state = State(h=EX1_H, y=np.array([0]), z={"1": np.array([z], dtype=bool)}, t={})
        np.testing.assert_allclose(model.logits(params, state)[0] - LOG_HALF, row, atol=1e-12)
    a = EX1_H + params["layers.1.bias"]
    for y, best in ((0, [True, False]), (1, [True, True])):
        ghat = params["head.weight"][y][None]
        np.testing.assert_array_equal(z_step(NP, a, ghat, np.zeros((1, 2), bool)), [best])


@pytest.mark.parametrize("tau2, objectives, final_h, final_z", [
    # τ² = 1: one cycle moves h to (x̃ + g_0)/2, nothing else changes: a fixed point
    (1.0, [-0.3381, -0.2756, -0.2756, -0.2756], [1.0, -0.15], [True, False]),
    # τ² = ∞: h = g_0, z → (1, 1), then h = (1.2, 0.5): the prior-mode drift of §3.1
    (math.inf, [-0.3381, -0.2131, -0.1631, -0.1631, -0.0381, -0.0381, -0.0381],
     [1.2, 0.5], [True, True]),
])
def test_ex1_engine_run(tau2, objectives, final_h, final_z):
    """Steps init, h, z, y per cycle (J rounded to 4 decimals, as in §4.7 Ex. 1)."""
    model, params = ex1_model(tau2)
    res = alternating_map(model, params, EX1_H, cycles=10, until_fixed_point=True,
                          record="step", observed="level0")
    got = [round(float(s.objective[0]), 4) for s in res.trajectory.steps]
    assert got[:len(objectives)] == objectives
    assert set(got[len(objectives):]) <= {objectives[-1]}  # the confirming no-op cycle
    assert bool(res.converged.all()) and int(res.state.y[0]) == 0
    np.testing.assert_allclose(res.state.h[0], final_h, atol=1e-12)
    np.testing.assert_array_equal(res.state.z["1"][0], final_z)


def test_ex2_adapool_picks_the_min():
    """A 2×2 window (0.5, −0.9, 0.2, −0.3), templates ±1: the plain CNN says class 0 (logits
    ±0.5); conditioned on y = 1 the joint block picks the min and gives logit 0.9; the engine
    started at the plain state stays at y = 0 (a block-wise, not global, optimum)."""
    model = DGM([L.Conv2d(1, 1, 1), L.Switch(1), L.MaxPool(2), L.Flatten()], classes=2,
                sigma2=1.0, tau2=1.0, input_shape=(1, 2, 2))
    params = {"layers.0.weight": np.ones((1, 1, 1, 1)), "layers.1.bias": np.zeros(1),
              "head.weight": np.array([[1.0], [-1.0]]), "head.bias": np.zeros(2)}
    x = np.array([0.5, -0.9, 0.2, -0.3]).reshape(1, 1, 2, 2)
    plain, logits = model.plain_state(params, x)
    np.testing.assert_allclose(logits, [[0.5, -0.5]])
    cond = plain.replace(y=np.array([1]))
    _, hooks = model.render(params, cond)
    z, t = joint_step(NP, x, hooks.gpool["2"], plain.z["1"], plain.t["2"], 2)
    assert int(t[0, 0, 0, 0]) == 1  # position of −0.9
    np.testing.assert_allclose(model.logits(params, cond.replace(z={"1": z}, t={"2": t}))[0, 1],
                               0.9, atol=1e-12)
    res = alternating_map(model, params, x, cycles=10, until_fixed_point=True,
                          observed="level0")
    assert bool(res.converged.all()) and int(res.state.y[0]) == 0


def ex3_model():
    """1-D: σ² = τ² = 1, x̃ = 0, rendering g_0 = 1 whenever the switch is on."""
    model = DGM([L.Dense(1, 1), L.Switch(1)], classes=2, sigma2=1.0, tau2=1.0)
    params = {"layers.0.weight": np.ones((1, 1)), "layers.1.bias": np.zeros(1),
              "head.weight": np.ones((2, 1)), "head.bias": np.zeros(2)}
    x = np.zeros((1, 1))
    state = State(h=x, y=np.array([0]), z={"1": np.ones((1, 1), bool)}, t={})
    return model, params, x, state


def h_step_objectives(options, cycles):
    model, params, x, state = ex3_model()
    res = alternating_map(model, params, x, cycles=cycles, options=options, record="step",
                          observed="level0", initial_state=state)
    # J here = Ex. 3's J + ‖g_0‖²/2σ² = J_ex + 0.5 (the render term is a constant)
    return [float(s.objective[0]) - 0.5 for s in res.trajectory.steps if s.name in ("init", "h")]


def test_ex3_damped_h_with_observation_decreases_at_step_8():
    j = h_step_objectives(Options(h_update="original", eta=0.1), cycles=12)
    np.testing.assert_allclose(j[:9], [-0.5, -0.41, -0.3461, -0.3024, -0.2744, -0.2582,
                                       -0.2510, -0.2505, -0.2548], atol=5e-5)
    h = 1 - 0.9 ** np.arange(len(j))  # the recursion h ← h + 0.1(1 − h) from h = 0
    np.testing.assert_allclose(j, -(h - 1) ** 2 / 2 - h ** 2 / 2, atol=1e-12)
    assert j[8] < j[7]  # the decrease the theorem excludes for exact steps
    assert all(b < a for a, b in zip(j[8:], j[9:]))
    exact = h_step_objectives(Options(), cycles=2)
    np.testing.assert_allclose(exact[1:], [-0.25, -0.25], atol=1e-12)
    toward_target = h_step_objectives(Options(h_update="damped", eta=0.1), cycles=30)
    assert all(b >= a for a, b in zip(toward_target, toward_target[1:]))
    assert toward_target[-1] <= -0.25 and abs(toward_target[-1] + 0.25) < 1e-3


def test_ex4_per_layer_blend_switches_on_a_losing_unit():
    """a = −0.05, ĝ = 1, blend 0.1: −0.045 + 0.1 = 0.055 > 0 ⇒ on; J drops by 0.05."""
    model = DGM([L.Dense(1, 1), L.Switch(1)], classes=2, sigma2=1.0, tau2=1.0)
    params = {"layers.0.weight": np.ones((1, 1)), "layers.1.bias": np.zeros(1),
              "head.weight": np.ones((2, 1)), "head.bias": np.zeros(2)}
    x = np.array([[-0.1]])  # h = x̃ + ½(g_0 − x̃) = −0.05 with the switch off (g_0 = 0)
    state = State(h=x, y=np.array([0]), z={"1": np.zeros((1, 1), bool)}, t={})

    def z_step_change(options):
        res = alternating_map(model, params, x, cycles=1, options=options, record="step",
                              observed="level0", initial_state=state)
        steps = {s.name: s for s in res.trajectory.steps}
        np.testing.assert_allclose(steps["h"].state.h, [[-0.05]], atol=1e-15)
        return (float(steps["1"].objective[0] - steps["h"].objective[0]),
                bool(steps["1"].state.z["1"][0, 0]))

    drop, on = z_step_change(Options(blend=0.1))
    assert on and drop == pytest.approx(-0.05, abs=1e-12)
    assert z_step_change(Options()) == (0.0, False)
    assert z_step_change(Options(blend=0.1, guard=True)) == (0.0, False)


def test_ex5_logit_feedback_switches_off_a_useful_unit():
    """C = I₂, b = 0, h = (1, 1), A = [[2, 0.5], [3, −1]]: Aᵀs = (7.53, −0.40) gates (1, 0);
    J for ŷ = 0 falls from 2.5 to 2.0 (+ const); one-hot feedback (2, 0.5) keeps (1, 1)."""
    model = DGM([L.Dense(2, 2), L.Switch(2)], classes=2, sigma2=1.0, tau2=math.inf)
    params = {"layers.0.weight": np.eye(2), "layers.1.bias": np.zeros(2),
              "head.weight": np.array([[2.0, 0.5], [3.0, -1.0]]),
              "head.bias": np.full(2, LOG_HALF)}
    h = np.ones((1, 2))
    plain, logits = model.plain_state(params, h)
    np.testing.assert_allclose(logits - LOG_HALF, [[2.5, 2.0]])
    assert int(plain.y[0]) == 0
    top = logits @ params["head.weight"]
    np.testing.assert_allclose(top, [[7.53, -0.40]], atol=5e-3)
    j = lambda z: float(model.logits(params, plain.replace(z={"1": z}))[0, 0] - LOG_HALF)
    z_logit = z_step(NP, h, top, plain.z["1"])
    z_onehot = z_step(NP, h, params["head.weight"][:1], plain.z["1"])
    np.testing.assert_array_equal(z_logit, [[True, False]])
    np.testing.assert_array_equal(z_onehot, [[True, True]])
    assert (j(plain.z["1"]), j(z_logit), j(z_onehot)) == pytest.approx((2.5, 2.0, 2.5))
    # the engine's z-step with logit feedback decreases J (h pinned to x̃ by a tiny τ²)
    pinned = DGM(model.layers, 2, sigma2=1.0, tau2=1e-12)
    res = alternating_map(pinned, params, h, cycles=1, options=Options(feedback="logits"),
                          record="step", observed="level0")
    steps = {s.name: s for s in res.trajectory.steps}
    assert float(steps["1"].objective[0] - steps["h"].objective[0]) == pytest.approx(-0.5,
                                                                                      abs=1e-6)
