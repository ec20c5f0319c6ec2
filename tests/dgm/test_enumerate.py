"""Enumeration on tiny DGMs (dgm-math §5.3, §5.5; worked example Ex. 1 of §4.7):
Σ_{y,z,t} p_G(y, z, t) = 1 with the enumerated log Z_G, Σ_{z,t} p_B(z, t | y) = 1 for every y
(both summed over the *traced program's* site log-probs, so they test the program, the closed form
and the enumeration against each other); the class posterior is the CNN: G —
log_softmax(gated logits) = enumerated log p_G(y | h, z, t); B — log_softmax(corrected logits) =
enumerated log p_B(y | h, z, t).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings

from backends import DGMError
from dgm import DGM, State, layers as L
from dgm import primitives
from dgm.enumerate import (MAX_CONFIGURATIONS, b_normaliser, configurations, count_configurations,
                           log_z_g, posterior_b, posterior_g)
from dgm.program import program_log_joint
from dgm.testing import problems

EXAMPLES = 50
BUDGET = 2 ** 12  # per hypothesis example, to keep the file fast (the library allows 2**16)
TINY = problems(max_side=4, max_units=4, norm=False)


@pytest.fixture(autouse=True)
def empty_handler_stack():
    assert primitives._STACK == []
    yield
    assert primitives._STACK == []


def ex1(sigma2=1.0):
    """dgm-math §4.7 Ex. 1: C = I₂, b = (−0.2, 0.1), A = [[1.2, 0.5], [1, −1]], uniform prior."""
    model = DGM([L.Dense(2, 2), L.Switch(2)], classes=2, sigma2=sigma2)
    params = {"layers.0.weight": np.eye(2), "layers.1.bias": np.array([-0.2, 0.1]),
              "head.weight": np.array([[1.2, 0.5], [1.0, -1.0]]), "head.bias": np.zeros(2)}
    return model, params


def program_site_sum(model, params, conf, normalisation, log_z=None, sites=None):
    """Σ of the traced program's site log-probs over ``sites`` (default: all latent sites) for the
    batch of configurations ``conf`` (h at an arbitrary value: its site is left out)."""
    h = np.zeros((conf.count,) + model.level0_shape)
    state = State(h=h, y=conf.y, z=conf.z, t=conf.t)
    _, tr = program_log_joint(model, params, h, state, normalisation, log_z=log_z)
    keep = [v for k, v in tr.log_probs().items() if k not in ("h", "x")
            and (sites is None or k.startswith(sites))]
    return sum(keep)


# -- (3) normalisation -------------------------------------------------------------------------
@settings(max_examples=EXAMPLES)
@given(TINY)
def test_g_prior_sums_to_one_over_all_configurations(problem):
    model, params = problem.model, problem.params
    assume(count_configurations(model) <= BUDGET)
    log_z = log_z_g(model, params)
    conf = configurations(model, params["head.weight"])
    log_p = program_site_sum(model, params, conf, "G", log_z=log_z)
    assert abs(np.logaddexp.reduce(log_p)) < 1e-10 * (1 + np.abs(log_p).max())


@settings(max_examples=EXAMPLES)
@given(TINY)
def test_b_latents_sum_to_one_for_every_class(problem):
    model, params = problem.model, problem.params
    assume(count_configurations(model) <= BUDGET)
    conf = configurations(model, params["head.weight"])
    log_p = program_site_sum(model, params, conf, "B", sites=("z:", "t:"))
    for y in range(model.classes):
        assert abs(b_normaliser(model, params, y) - 1) < 1e-10
        assert abs(np.logaddexp.reduce(log_p[conf.y == y])) < 1e-10 * (1 + np.abs(log_p).max())


def test_b_normaliser_has_no_inf_or_nan_for_large_logits():
    model, params = ex1()
    params["layers.1.bias"] = np.array([-1e3, 1e3])
    for y in (0, 1):
        assert abs(b_normaliser(model, params, y) - 1) < 1e-12


# -- (4) the class posterior is the CNN ----------------------------------------------------------
def tiled_states(model, table, h):
    """States (N·M,) pairing every example n with every configuration m, in table order."""
    conf = table.configurations
    n, m = h.shape[0], conf.count
    idx_n, idx_m = np.repeat(np.arange(n), m), np.tile(np.arange(m), n)
    return State(h=h[idx_n], y=np.zeros(n * m, dtype=np.int64),
                 z={p: v[idx_m] for p, v in conf.z.items()},
                 t={p: v[idx_m] for p, v in conf.t.items()})


def max_log_prob_error(model, table, logits):
    n, m = table.log_probs.shape[:2]
    log_q = logits - np.logaddexp.reduce(logits, -1, keepdims=True)
    return np.abs(log_q.reshape(n, m, -1) - table.log_probs).max()


@settings(max_examples=EXAMPLES)
@given(TINY)
@example(problem=None)  # Ex. 1 at its h
def test_g_posterior_is_softmax_of_gated_logits(problem):
    if problem is None:
        (model, params), h = ex1(), np.array([[0.8, -0.3]])
    else:
        model, params, h = problem.model, problem.params, problem.state.h
    assume(count_configurations(model) * h.shape[0] <= BUDGET)
    table = posterior_g(model, params, h)
    state = tiled_states(model, table, h)
    assert max_log_prob_error(model, table, model.logits(params, state)) < 1e-9


@settings(max_examples=EXAMPLES)
@given(TINY)
def test_b_posterior_is_softmax_of_corrected_logits(problem):
    model, params, h = problem.model, problem.params, problem.state.h
    assume(count_configurations(model) * h.shape[0] <= BUDGET)
    table = posterior_b(model, params, h)
    state = tiled_states(model, table, h)
    assert max_log_prob_error(model, table, model.corrected_logits(params, state)) < 1e-9


# -- (7) worked example Ex. 1 (numbers from dgm-math §4.7) ---------------------------------------
EX1_B = {0: [-4.1948, -4.4198, -4.1948, -4.4198], 1: [-4.1386, -4.4386, -4.0386, -4.3386]}
EX1_Z = [(0, 0), (0, 1), (1, 0), (1, 1)]


def ex1_state(y, z):
    h = np.array([[0.8, -0.3]])
    return h, State(h=h, y=np.array([y]), z={"1": np.array([z], dtype=bool)}, t={})


def test_ex1_log_z_g():
    model, params = ex1()
    assert abs(log_z_g(model, params) - 1.7568) < 5e-5


@pytest.mark.parametrize("y", [0, 1])
@pytest.mark.parametrize("cell", range(4))
def test_ex1_log_p_b_cells(y, cell):
    model, params = ex1()
    h, state = ex1_state(y, EX1_Z[cell])
    closed = model.log_joint(params, h, state, "B", observed="level0").total[0]
    traced = program_log_joint(model, params, h, state, "B")[0][0]
    assert abs(closed - EX1_B[y][cell]) < 5e-5
    assert abs(traced - EX1_B[y][cell]) < 5e-5


def test_ex1_log_p_g_cell():
    model, params = ex1()
    h, state = ex1_state(1, (1, 1))
    log_z = log_z_g(model, params)
    closed = model.log_joint(params, h, state, "G", log_z=log_z, observed="level0").total[0]
    traced = program_log_joint(model, params, h, state, "G", log_z=log_z)[0][0]
    assert abs(closed - (-0.2581 - 1.7568 - math.log(2 * math.pi))) < 1e-4
    assert abs(traced - closed) < 1e-12


def test_ex1_map_cells_g_and_b_disagree():
    """Ex. 1 checks: the G-MAP at this h is (y=1, z=11), the B-MAP is (y=1, z=10)."""
    model, params = ex1()
    h = np.array([[0.8, -0.3]])
    g, b = posterior_g(model, params, h), posterior_b(model, params, h)
    conf = g.configurations
    log_z = log_z_g(model, params)
    joint = {}
    for norm in ("G", "B"):
        cells = {}
        for y in (0, 1):
            for m in range(conf.count):
                z = tuple(int(v) for v in conf.z["1"][m])
                _, state = ex1_state(y, z)
                cells[(y, z)] = program_log_joint(model, params, h, state, norm,
                                                  log_z=log_z)[0][0]
        joint[norm] = max(cells, key=cells.get)
    assert joint == {"G": (1, (1, 1)), "B": (1, (1, 0))}
    assert g.log_probs.shape == b.log_probs.shape == (1, 4, 2)


# -- budget ------------------------------------------------------------------------------------
def test_enumeration_beyond_budget_raises():
    model = DGM([L.Dense(2, 17), L.Switch(17)], classes=2)
    params = model.init("numpy", seed=0)
    assert count_configurations(model) > MAX_CONFIGURATIONS
    with pytest.raises(DGMError, match="budget"):
        log_z_g(model, params)
    with pytest.raises(DGMError, match="budget"):
        b_normaliser(model, params, 0)


def test_configurations_are_distinct_and_complete():
    model = DGM([L.Conv2d(1, 1, 1), L.Switch(1), L.MaxPool(2), L.Flatten(), L.Dense(1, 2),
                 L.Switch(2)], classes=3, input_shape=(1, 2, 2))
    conf = configurations(model, np.zeros(1))
    assert conf.count == 3 * 2 ** 4 * 4 * 2 ** 2
    rows = np.concatenate([conf.y[:, None], conf.z["1"].reshape(conf.count, -1),
                           conf.t["2"].reshape(conf.count, -1), conf.z["5"]], 1).astype(int)
    assert len({tuple(r) for r in rows}) == conf.count


def test_enumeration_on_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    model, params = ex1()
    tparams = {k: torch.from_numpy(v) for k, v in params.items()}
    assert abs(float(log_z_g(model, tparams)) - float(log_z_g(model, params))) < 1e-12
    h = np.array([[0.8, -0.3], [0.1, 0.4]])
    np.testing.assert_allclose(posterior_g(model, tparams, torch.from_numpy(h)).log_probs.numpy(),
                               posterior_g(model, params, h).log_probs, atol=1e-12)
