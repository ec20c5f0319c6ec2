"""The generative program and its interpreters (design README "the program is the source of
truth"; dgm-math §1.2–1.5): the closed-form log joint equals the traced program's log density and
the Pyro trace's ``log_prob_sum()`` (G and B, site by site); ancestral sampling draws from p_B;
handlers are wrappers, decorators and context managers and never leave the stack dirty.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import DGMError
from dgm import DGM, State, layers as L
from dgm import primitives
from dgm.distributions import Bernoulli, Categorical, Normal, UniformPosition
from dgm.enumerate import configurations, count_configurations, log_z_g
from dgm.handlers import condition, log_density, seed, trace
from dgm.primitives import factor, sample
from dgm.program import generative_program, program_data, program_log_joint, sample_b
from dgm.testing import check_program, problems, to_torch

EXAMPLES = 50
LOG_Z = st.floats(-5.0, 5.0)


@pytest.fixture(autouse=True)
def empty_handler_stack():
    """Every test starts and ends with no active handler (exception safety of ``__exit__``)."""
    assert primitives._STACK == []
    yield
    assert primitives._STACK == []


def tolerance(lj, scale=1e-10):
    return scale * (1.0 + sum(np.abs(v) for v in lj.terms.values()))


# -- (1) closed form == traced program ------------------------------------------------------------
@settings(max_examples=EXAMPLES)
@given(problems(max_side=4, max_units=4), st.sampled_from(["G", "B"]), LOG_Z)
def test_traced_log_density_equals_closed_form(problem, normalisation, log_z):
    """Total and site by site (``dgm.testing.check_program``)."""
    check_program(problem, (normalisation,), log_z=log_z, pyro=False)


@settings(max_examples=EXAMPLES)
@given(problems(max_side=4, max_units=4, norm=False), st.sampled_from(["G", "B"]))
def test_traced_log_density_equals_closed_form_with_enumerated_log_z(problem, normalisation):
    model, params, x, state = problem.model, problem.params, problem.x, problem.state
    log_z = log_z_g(model, params) if count_configurations(model) <= 2 ** 12 else None
    lj = model.log_joint(params, x, state, normalisation, log_z=log_z, observed="level0")
    total, _ = program_log_joint(model, params, x, state, normalisation, log_z=log_z)
    np.testing.assert_array_less(np.abs(total - lj.total), tolerance(lj))


# -- (2) Pyro trace == both --------------------------------------------------------------------
@settings(max_examples=30)
@given(problems(max_side=4, max_units=4), st.sampled_from(["G", "B"]), LOG_Z)
def test_pyro_trace_equals_closed_form_and_program(problem, normalisation, log_z):
    """Pyro's trace of the same program ≡ the closed form (``dgm.testing.check_program``)."""
    check_program(problem, (normalisation,), log_z=log_z, pyro=True)


def test_pyro_program_samples_every_site_with_event_shapes():
    import torch
    from pyro import poutine
    from dgm.pyro_adapter import to_pyro

    model = conv_model(tau2=2.0)
    params = model.init("torch", seed=0, dtype=torch.float64)
    torch.manual_seed(0)
    tr = poutine.trace(to_pyro(model, params, "B")).get_trace(7)
    tr.compute_log_prob()
    for name, shape in expected_shapes(model, 7).items():
        assert tuple(tr.nodes[name]["value"].shape) == shape, name
        assert tuple(tr.nodes[name]["log_prob"].shape) == (7,), name


def test_to_pyro_needs_torch_params():
    model = conv_model()
    with pytest.raises(TypeError, match="torch"):
        __import__("dgm").to_pyro(model, model.init("numpy"), "B")


# -- (5) ancestral sampling ----------------------------------------------------------------------
def conv_model(tau2=math.inf, leak=0.0):
    return DGM([L.Conv2d(1, 1, 3, padding=1), L.Switch(1, leak=leak), L.MaxPool(2), L.Flatten(),
                L.Dense(1, 2), L.Switch(2)], classes=3, sigma2=0.5, tau2=tau2,
               input_shape=(1, 2, 2))


def expected_shapes(model, n):
    shapes = {"y": (n,), "h": (n,) + model.level0_shape}
    shapes.update({f"z:{p}": (n,) + model.shapes[p] for p in model.switch_sites})
    for p in model.pool_sites:
        c, h, w = model.shapes[p]
        k = model.site_layer[p].kernel_size
        shapes[f"t:{p}"] = (n, c, h // k, w // k)
    if math.isfinite(model.tau2):
        shapes["x"] = (n,) + model.level0_shape
    return shapes


@pytest.mark.parametrize("tau2", [math.inf, 0.5])
def test_sample_b_shapes_types_and_ranges(tau2):
    model = conv_model(tau2)
    params = model.init("numpy", seed=1)
    state, x = sample_b(model, params, 11, rng=3)
    data = program_data(model, state, x)
    assert {k: tuple(v.shape) for k, v in data.items()} == expected_shapes(model, 11)
    assert all(state.z[p].dtype == bool for p in model.switch_sites)
    for p in model.pool_sites:
        assert state.t[p].min() >= 0 and state.t[p].max() < model.site_layer[p].kernel_size ** 2
    assert (x is None) == (tau2 == math.inf)


def binomial_ok(count, n, p, sigmas=5.0):
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


@settings(max_examples=10)
@given(st.lists(st.floats(-2, 2), min_size=2, max_size=3), st.integers(0, 2 ** 31 - 1))
def test_sampled_class_frequencies_match_softmax_beta(beta, rng_seed):
    model = DGM([L.Dense(2, 2), L.Switch(2)], classes=len(beta))
    params = model.init("numpy", seed=0)
    params["head.bias"] = np.array(beta)
    n = 4000
    state, _ = sample_b(model, params, n, rng=rng_seed)
    p = np.exp(beta - np.logaddexp.reduce(beta))
    counts = np.bincount(state.y, minlength=len(beta))
    assert all(binomial_ok(c, n, pk) for c, pk in zip(counts, p))


@pytest.mark.parametrize("leak", [0.0, 0.3])
def test_sampled_configuration_frequencies_match_enumerated_p_b(leak):
    """All (y, z, t) cells: the ancestral sampler's counts against the closed-form
    p_B(y, z, t) = exp(T_y + Σ switch terms + Σ pool terms), chi-square goodness of fit (cells
    with expected count < 5 merged)."""
    from scipy import stats
    model = conv_model(leak=leak)
    params = model.init("numpy", seed=2)
    params = {k: np.random.default_rng(5).uniform(-2, 2, v.shape) for k, v in params.items()}
    conf = configurations(model, params["head.weight"])
    h = np.zeros((conf.count,) + model.level0_shape)
    terms = model.log_joint(params, h, State(h=h, y=conf.y, z=conf.z, t=conf.t), "B",
                            observed="level0").terms
    p = np.exp(sum(v for k, v in terms.items() if k not in ("gauss", "obs")))
    n = 20000
    state, _ = sample_b(model, params, n, rng=11)

    def keys(y, z, t, m):
        parts = [y.reshape(m, 1)] + [z[q].reshape(m, -1) for q in model.switch_sites] + \
                [t[q].reshape(m, -1) for q in model.pool_sites]
        return [tuple(row) for row in np.concatenate(parts, 1).astype(int)]

    index = {key: i for i, key in enumerate(keys(conf.y, conf.z, conf.t, conf.count))}
    counts = np.bincount([index[k] for k in keys(state.y, state.z, state.t, n)],
                         minlength=conf.count)
    assert abs(p.sum() - 1) < 1e-12
    small = n * p < 5
    observed = np.append(counts[~small], counts[small].sum())
    expected = np.append(n * p[~small], n * p[small].sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-4


def test_sample_b_int_seed_repeats_and_generator_advances():
    model = conv_model(0.5)
    params = model.init("numpy", seed=0)
    a, xa = sample_b(model, params, 5, rng=7)
    b, xb = sample_b(model, params, 5, rng=7)
    np.testing.assert_array_equal(xa, xb)
    gen = np.random.default_rng(7)
    c, xc = sample_b(model, params, 5, rng=gen)
    d, xd = sample_b(model, params, 5, rng=gen)
    assert not np.array_equal(xc, xd)


def test_model_program_trace_conditions_given_sites_and_draws_the_rest():
    model = conv_model(0.5)
    params = model.init("numpy", seed=0)
    y = np.array([2, 0, 1])
    tr = model.program.trace(params, 3, rng=1, normalisation="G", data={"y": y})
    np.testing.assert_array_equal(tr["y"]["value"], y)
    assert tr["y"]["is_observed"] and not tr["h"]["is_observed"]
    assert list(tr) == ["y", "z:5", "t:2", "z:1", "G", "h", "x"]
    tr = model.program.trace(params, 4, y=1)
    np.testing.assert_array_equal(tr["y"]["value"], [1, 1, 1, 1])
    state, x = model.program.sample(params, 4, rng=0)
    total, _ = model.program.log_joint(params, x, state, "B")
    closed = model.log_joint(params, x, state, "B", observed="level0")
    np.testing.assert_array_less(np.abs(total - closed.total), tolerance(closed))


def test_torch_program_matches_numpy_program():
    torch = pytest.importorskip("torch")
    model = conv_model(0.5, leak=0.1)
    params = model.init("numpy", seed=4)
    state, x = sample_b(model, params, 4, rng=0)
    ours, _ = program_log_joint(model, params, x, state, "B")
    theirs, _ = program_log_joint(model, to_torch(params), to_torch(x), to_torch(state), "B")
    assert isinstance(theirs, torch.Tensor)
    np.testing.assert_allclose(theirs.numpy(), ours, rtol=0, atol=1e-12)


# -- (6) handlers: forms, validation, exception safety ----------------------------------------
def toy(n=2):
    like = np.zeros((n, 3))
    y = sample("y", Categorical(like))
    v = sample("v", Normal(like + y[:, None], 2.0))
    factor("f", v.sum(-1))
    return y, v


def test_handler_forms_agree():
    y = np.array([1, 2])
    wrapped = trace(condition(seed(toy, seed=0), data={"y": y})).get_trace()

    @condition(data={"y": y})
    def decorated():
        return toy()

    with trace() as tr, seed(seed=0):
        decorated()
    for name in ("y", "v", "f"):
        np.testing.assert_array_equal(tr.trace[name]["value"], wrapped[name]["value"])
    np.testing.assert_allclose(tr.trace.log_prob_sum(), wrapped.log_prob_sum())


def test_log_density_is_sum_of_site_log_probs():
    y, v = np.array([0, 2]), np.arange(6.0).reshape(2, 3)
    total, tr = log_density(toy, data={"y": y, "v": v})
    expected = np.log(1 / 3) - ((v - y[:, None]) ** 2).sum(-1) / 4 - 1.5 * math.log(4 * math.pi) \
        + v.sum(-1)
    np.testing.assert_allclose(total, expected, rtol=1e-13)
    assert all(tr[name]["is_observed"] for name in tr)


class Boom(RuntimeError):
    pass


def failing_model():
    toy()
    raise Boom("inside the model")


def test_stack_is_empty_after_exception_in_wrapped_model():
    with pytest.raises(Boom):
        trace(condition(seed(failing_model, seed=0), data={})).get_trace()
    assert primitives._STACK == []


def test_stack_is_empty_after_exception_in_nested_context_managers():
    outer = trace()
    with pytest.raises(Boom):
        with outer, seed(seed=1):
            with condition(data={}):
                failing_model()
    assert primitives._STACK == []
    assert list(outer.trace) == ["y", "v", "f"]


def test_stack_is_empty_after_exception_in_program():
    model = conv_model()
    params = model.init("numpy", seed=0)
    with pytest.raises(DGMError, match="no value"):
        with trace():
            generative_program(model, params, 2)  # no seed, nothing conditioned
    assert primitives._STACK == []


def test_handler_validation():
    with pytest.raises(ValueError, match="exactly one"):
        seed(toy)
    with pytest.raises(ValueError, match="exactly one"):
        seed(toy, seed=0, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="mapping"):
        condition(toy, data=[("y", 1)])
    with pytest.raises(TypeError, match="Distribution"):
        sample("y", np.zeros(2))
    with pytest.raises(DGMError, match="twice"):
        trace(seed(lambda: (toy(), toy()), seed=0)).get_trace()
    with pytest.raises(DGMError, match="normalisation"):
        generative_program(conv_model(), conv_model().init("numpy"), 2, normalisation="C")
    normed = DGM([L.Dense(2, 2), L.Norm(), L.Switch(2)], classes=2, norm="frozen")
    with pytest.raises(DGMError, match="norm_scales"):
        with seed(seed=0):
            generative_program(normed, normed.init("numpy"), 2)
    with pytest.raises(DGMError, match="Norm"):
        log_z_g(normed, normed.init("numpy"))


def test_sample_without_handlers_returns_obs_or_explains():
    obs = np.zeros((2, 3))
    assert sample("v", Normal(obs, 1.0), obs=obs) is obs
    with pytest.raises(DGMError, match="seed"):
        sample("v", Normal(obs, 1.0))


def test_distribution_log_probs_against_scipy():
    from scipy import stats
    rng = np.random.default_rng(0)
    u = rng.uniform(-3, 3, (4, 5))
    z = rng.random((4, 5)) < 0.5
    expected = stats.bernoulli(1 / (1 + np.exp(-0.7 * u))).logpmf(z).sum(-1)
    np.testing.assert_allclose(Bernoulli(u, leak=0.3).log_prob(z), expected, rtol=1e-12)
    loc, v = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 3))
    np.testing.assert_allclose(Normal(loc, 0.3).log_prob(v), stats.norm(loc, math.sqrt(0.3))
                               .logpdf(v).reshape(4, -1).sum(-1), rtol=1e-12)
    logits = rng.normal(size=(4, 3))
    y = np.array([0, 2, 1, 1])
    np.testing.assert_allclose(Categorical(logits).log_prob(y),
                               logits[np.arange(4), y] - np.logaddexp.reduce(logits, -1))
    t = rng.integers(0, 4, (4, 1, 2, 2))
    lp = UniformPosition(4, t.astype(float)).log_prob(t)
    np.testing.assert_allclose(lp, -4 * math.log(4))
    t[0, 0, 0, 0] = 4
    assert UniformPosition(4, t.astype(float)).log_prob(t)[0] == -math.inf


def test_importing_dgm_imports_neither_torch_nor_pyro():
    import subprocess
    import sys
    code = ("import sys, dgm, dgm.pyro_adapter, dgm.enumerate; "
            "assert 'torch' not in sys.modules and 'pyro' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
