"""Engine numerics (issue 16, case 9): the soft class distribution at huge logits, and the joint
(z, t) block's tie rule on the block objective (dgm-math §4.3), against brute force."""
from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import backend_by_name
from dgm import DGM, State, layers as L
from inference import Options, alternating_map, joint_step

NP = backend_by_name("numpy")


def test_soft_q_sums_to_one_and_free_energy_holds_at_huge_logits():
    """q = exp(log_softmax(s)) summed to 1 − O(1e-6) at logits ~1e10, and F = Σ q_y J_y + H(q)
    then fell by thousands (5000000000.691 → 4999995213.276) on a one-unit net."""
    model = DGM([L.Dense(1, 1), L.Switch(1)], classes=2, sigma2=1.0, tau2=1.0)
    params = {"layers.0.weight": np.ones((1, 1)), "layers.1.bias": np.zeros(1),
              "head.weight": np.array([[1e5], [1e5 - 1e-4]]), "head.bias": np.zeros(2)}
    x = np.array([[1e5]])
    result = alternating_map(model, params, x, cycles=3, observed="level0", record="step",
                             options=Options(feedback="softmax"))
    steps = result.trajectory.steps
    for step in steps:
        assert abs(float(step.state.q.sum()) - 1.0) <= 1e-15
    values = np.array([float(np.asarray(s.objective)[0]) for s in steps])
    assert values.max() > 1e9                            # the regime of the issue
    assert (np.diff(values) >= -1e-5).all(), np.diff(values)
    last = steps[-1]                                     # right after S_q: F = logsumexp_y J
    assert last.name == "y"
    js = [float(np.asarray(model.objective(params, x, last.state, y=np.array([c])))[0])
          for c in range(2)]
    assert abs(values[-1] - np.logaddexp(*js)) <= 1e-5   # was off by 3.8e3


def _block_value(a, g, t, z, k, leak):
    """The joint block's objective per window: Σ over the window's selected unit of
    g·γ(z_p)·a_p, by brute force (only the selected unit is rendered into)."""
    n, c, hh, ww = g.shape
    out = np.zeros(g.shape)
    for i, j, u, v in itertools.product(range(n), range(c), range(hh), range(ww)):
        p = int(t[i, j, u, v])
        r, s = u * k + p // k, v * k + p % k
        out[i, j, u, v] = g[i, j, u, v] * (1.0 if z[i, j, r, s] else leak) * a[i, j, r, s]
    return out


@settings(max_examples=300)
@given(seed=st.integers(0, 2 ** 31), k=st.integers(2, 3), leak=st.sampled_from([0.0, 0.1]),
       grid=st.booleans())
def test_joint_block_moves_t_only_when_the_block_objective_increases(seed, k, leak, grid):
    """§4.3: keep the current value whenever it attains the block maximum. A window whose
    entries all disagree in sign with g (every unit off, leak 0) has the same objective at every
    position: t must stay (the entry-wise tie test moved it)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-2, 2, (2, 2, 2 * k, 2 * k))
    g = rng.uniform(-2, 2, (2, 2, 2, 2))
    if grid:
        a, g = np.round(a), np.round(g)
    a[0, 0] = -np.abs(a[0, 0]) - 0.5                     # a window of all-negative entries,
    g[0, 0] = np.abs(g[0, 0]) + 0.5                      # positive feedback: all off
    z_old = rng.random(a.shape) < 0.5
    t_old = rng.integers(0, k * k, g.shape)
    z_new, t_new = joint_step(NP, a, g, z_old, t_old, k, True, leak)
    before = _block_value(a, g, t_old, z_old, k, leak)
    after = _block_value(a, g, t_new, z_new, k, leak)
    best = np.max([_block_value(a, g, np.full(g.shape, p), np.ones(a.shape, bool), k, leak)
                   for p in range(k * k)] + [_block_value(a, g, np.full(g.shape, p),
                                                          np.zeros(a.shape, bool), k, leak)
                                             for p in range(k * k)], axis=0)
    assert np.allclose(after, best, rtol=0, atol=1e-12)   # the block is maximised
    moved = t_new != t_old
    assert (after[moved] > before[moved]).all()         # t moves only for a strict increase
    if leak == 0:
        assert (t_new[0, 0] == t_old[0, 0]).all()
