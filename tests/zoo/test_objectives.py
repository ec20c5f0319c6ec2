"""zoo.training.objectives (issue 15), float64 on tiny random DGMs, against independent
computations: the generative term is −log p_B / D at the engine's state, scored by the
generative program's interpreter (``dgm.program.program_log_joint``, not ``DGM.log_joint``);
a small gradient step at fixed latents never lowers the log joint; the semi-supervised
objective with every label equals the supervised one, and without labels it is the joint at
the engine's own class ("map") or the log-sum-exp of per-class joints ("lse"); the σ² update
is the maximiser of the log joint over σ² for fixed renderings."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import inference
from dgm import DGM
from dgm import layers as L
from dgm.program import program_log_joint
from zoo.models.cnnf import CNNF, _key
from zoo.training.objectives import (Batch, CrossEntropy, Generative, Objective,
                                     make_objective, sigma2_ml)
from dgm.testing import problems, real_conv_problems, to_torch

torch.set_num_threads(1)
SETTINGS = settings(max_examples=25, deadline=None)
PROBLEMS = st.one_of(problems(max_batch=3, norm=False), real_conv_problems())


def _net(problem) -> CNNF:
    """A CNNF over the problem's model with its float64 parameters."""
    net = CNNF(problem.model, cycles=1)
    net.weights = torch.nn.ParameterDict(
        {_key(k): torch.nn.Parameter(v) for k, v in to_torch(problem.params).items()})
    return net


def _reference_joint(model: DGM, params, x, y, cycles):
    """log p_B at the engine's state with y observed, scored by the program interpreter,
    h = x̃ written out for τ² = ∞ (N,)."""
    res = inference.alternating_map(model, params, x, cycles=cycles, record="none",
                                    observed_y=y)
    state = res.state.replace(h=res.x_obs) if math.isinf(model.tau2) else res.state
    return program_log_joint(model, params, res.x_obs, state, "B")[0]


@SETTINGS
@given(problem=PROBLEMS, cycles=st.integers(0, 2))
def test_generative_term_is_minus_log_joint_over_d_at_the_engines_state(problem, cycles):
    net, x = _net(problem), torch.from_numpy(problem.x)
    y = torch.from_numpy(problem.rng.integers(0, problem.model.classes, len(problem.x)))
    loss, _ = Generative(cycles=cycles)(net, Batch(x, y))
    ref = _reference_joint(problem.model, to_torch(problem.params), x, y, cycles)
    dim = math.prod(problem.model.level0_shape)
    expected = -ref.sum() / (dim * len(y))
    assert torch.allclose(loss.detach(), expected, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(problem=PROBLEMS, cycles=st.integers(0, 2))
def test_a_small_gradient_step_at_fixed_latents_never_lowers_the_log_joint(problem, cycles):
    net, x = _net(problem), torch.from_numpy(problem.x)
    y = torch.from_numpy(problem.rng.integers(0, problem.model.classes, len(problem.x)))
    gen = Generative(cycles=cycles)
    groups = gen.e_step(net, Batch(x, y))
    loss = gen.m_step_loss(net, groups, len(y))
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    params = {k: v.detach() for k, v in net.params().items()}
    _, x_obs, (state,) = groups[0]
    before = program_log_joint(problem.model, params, x_obs, state, "B")[0].sum()
    with torch.no_grad():
        for p in net.parameters():
            p -= 1e-7 / max(1.0, norm) * p.grad
    after = program_log_joint(problem.model, {k: v.detach() for k, v in net.params().items()},
                              x_obs, state, "B")[0].sum()
    assert float(after) >= float(before) - 1e-12 * (1 + abs(float(before)))
    if norm > 1e-3:  # a first-order step: the increase is ≈ η‖∇‖² · D·N, visible in float64
        assert float(after) > float(before)


@SETTINGS
@given(problem=PROBLEMS, unlabelled=st.sampled_from(["map", "lse"]))
def test_semi_supervised_with_every_label_is_supervised(problem, unlabelled):
    net, x = _net(problem), torch.from_numpy(problem.x)
    y = torch.from_numpy(problem.rng.integers(0, problem.model.classes, len(problem.x)))
    semi = make_objective("hybrid", gen_weight=0.7, unlabelled=unlabelled)(net, Batch(x, y))[0]
    ce = torch.nn.functional.cross_entropy
    passes = net.forward_passes(x)
    ref = _reference_joint(problem.model, to_torch(problem.params), x, y, 1)
    dim = math.prod(problem.model.level0_shape)
    supervised = sum(ce(s, y) for s in passes) / len(passes) - 0.7 * ref.sum() / (dim * len(y))
    assert torch.allclose(semi.detach(), supervised.detach(), rtol=1e-10, atol=1e-10)


@SETTINGS
@given(problem=PROBLEMS)
def test_unlabelled_images_use_the_map_class_or_the_class_marginal(problem):
    net, x = _net(problem), torch.from_numpy(problem.x)
    model, params, dim = problem.model, to_torch(problem.params), \
        math.prod(problem.model.level0_shape)
    hidden = torch.full((len(x),), -1, dtype=torch.int64)
    # "map": the engine infers y; the joint at its final state
    res = inference.alternating_map(model, params, x, cycles=1, record="none")
    state = res.state.replace(h=res.x_obs) if math.isinf(model.tau2) else res.state
    ref_map = program_log_joint(model, params, res.x_obs, state, "B")[0]
    got = Generative(cycles=1, unlabelled="map")(net, Batch(x, hidden))[0]
    assert torch.allclose(got.detach(), -ref_map.sum() / (dim * len(x)), rtol=1e-10)
    # "lse": log Σ_y p_B at each class's own MAP state
    per_class = torch.stack([_reference_joint(model, params, x, torch.full_like(hidden, k), 1)
                             for k in range(model.classes)], -1)
    got = Generative(cycles=1, unlabelled="lse")(net, Batch(x, hidden))[0]
    expected = -torch.logsumexp(per_class, -1).sum() / (dim * len(x))
    assert torch.allclose(got.detach(), expected, rtol=1e-10)
    # CE ignores unlabelled images (a zero loss whose gradient exists and is zero)
    zero = CrossEntropy()(net, Batch(x, hidden))[0]
    zero.backward()
    assert float(zero) == 0.0 and all(float(p.grad.abs().max()) == 0 for p in net.parameters())


@SETTINGS
@given(problem=PROBLEMS, cycles=st.integers(0, 1))
def test_elbo_is_the_bound_under_the_networks_class_posterior(problem, cycles):
    """"elbo": −[Σ_y q_y log p_B,y − Σ_y q_y log q_y] / D with q = softmax of the network's
    readout and log p_B,y the program interpreter's joint at class y's MAP state; never below
    the "lse" loss (Gibbs: the bound is ≤ the marginal), equal to it when the readout's logits
    are the joints themselves (q = the model's posterior); and its gradient reaches the
    readout through q: with other logits the loss is the lse loss + KL(q ‖ p_B(y | …)) / D,
    and so is its gradient in the logits."""
    net, x = _net(problem), torch.from_numpy(problem.x)
    model, params, dim = problem.model, to_torch(problem.params), \
        math.prod(problem.model.level0_shape)
    hidden = torch.full((len(x),), -1, dtype=torch.int64)
    joints = torch.stack([_reference_joint(model, params, x, torch.full_like(hidden, k), cycles)
                          for k in range(model.classes)], -1)
    with torch.no_grad():
        log_q = torch.log_softmax(net.readout_logits(net.forward_passes(x)), -1)
    expected = -(log_q.exp() * (joints - log_q)).sum() / (dim * len(x))
    got = Generative(cycles=cycles, unlabelled="elbo")(net, Batch(x, hidden))[0]
    assert torch.allclose(got.detach(), expected, rtol=1e-9, atol=1e-12)
    lse = Generative(cycles=cycles, unlabelled="lse")(net, Batch(x, hidden))[0]
    assert float(got) >= float(lse) - 1e-12 * abs(float(lse))
    net.readout_logits = lambda passes: joints + 3.0          # q = p_B(y | x̃, h, z, t)
    tight = Generative(cycles=cycles, unlabelled="elbo")(net, Batch(x, hidden))[0]
    assert torch.allclose(tight.detach(), lse.detach(), rtol=1e-10, atol=1e-12)
    logits = (-joints + torch.linspace(0, 1, model.classes)).requires_grad_()
    net.readout_logits = lambda passes: logits
    moved = Generative(cycles=cycles, unlabelled="elbo")(net, Batch(x, hidden))[0]
    log_q, log_p = torch.log_softmax(logits, -1), torch.log_softmax(joints, -1)
    kl = (log_q.exp() * (log_q - log_p)).sum()                    # bound = marginal − KL
    assert torch.allclose(moved, lse.detach() + kl / (dim * len(x)), rtol=1e-9, atol=1e-12)
    moved.backward()
    ref_grad, = torch.autograd.grad(kl / (dim * len(x)), logits)
    scale = float(joints.abs().max() + logits.abs().max() + 1) / (dim * len(x))
    assert torch.allclose(logits.grad, ref_grad, rtol=1e-8, atol=1e-12 * scale)


@SETTINGS
@given(problem=PROBLEMS, factor=st.sampled_from([0.5, 0.9, 0.999, 1.001, 1.1, 2.0]))
def test_sigma2_update_is_the_ml_estimate_for_fixed_renderings(problem, factor):
    model, params, x = problem.model, to_torch(problem.params), torch.from_numpy(problem.x)
    res = inference.alternating_map(model, params, x, cycles=1, record="none")
    s2 = sigma2_ml(model, params, res.x_obs, res.state)
    state = res.state.replace(h=res.x_obs) if math.isinf(model.tau2) else res.state
    # the rendering does not depend on σ² (B has no σ² outside T_gauss): rebuild the model
    best, other = (DGM(model.layers, model.classes, encoder=model.encoder, sigma2=v,
                       tau2=model.tau2, input_shape=model.input_shape, norm=model.norm)
                   for v in (s2, s2 * factor))
    at_ml = program_log_joint(best, params, res.x_obs, state, "B")[0].sum()
    off = program_log_joint(other, params, res.x_obs, state, "B")[0].sum()
    assert float(at_ml) >= float(off) - 1e-10 * (1 + abs(float(at_ml)))
    # and the closed form: Σ‖h − g0‖² / (N·D)
    g0 = best.render(params, state)[0]
    assert s2 == pytest.approx(float(((state.h - g0) ** 2).sum()) / g0.numel(), rel=1e-12)


def test_sigma2_moves_toward_its_estimate_after_a_step():
    model = DGM([L.Dense(4, 3), L.Switch(3)],
                classes=2, input_shape=(4,))
    net = CNNF(model, cycles=0)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    obj = make_objective("generative", learn_sigma2=True, estep_cycles=0)
    _, parts = obj(net, Batch(x, y))
    obj.after_step(net)
    assert net.dgm.sigma2 == pytest.approx(0.9 * 1.0 + 0.1 * parts["sigma2_ml"])


def test_objective_sums_weighted_terms_and_names_them():
    model = DGM([L.Dense(4, 3), L.Switch(3)],
                classes=2, input_shape=(4,))
    net = CNNF(model, cycles=1)
    x, y = torch.randn(5, 4), torch.randint(0, 2, (5,))
    loss, parts = Objective([(1.0, CrossEntropy()), (2.5, Generative(0))])(net, Batch(x, y))
    assert float(loss) == pytest.approx(parts["ce"] + 2.5 * parts["gen"], rel=1e-6)
    with pytest.raises(ValueError, match="objective must be one of"):
        make_objective("nope")
