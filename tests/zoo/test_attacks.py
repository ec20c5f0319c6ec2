"""Tests for zoo.attacks: attacks against known answers and torchattacks, statistics, checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.attacks import (
    CheckResult,
    accuracy_vanishes,
    accuracy_with_interval,
    blackbox_not_stronger,
    broken_by,
    ce_loss,
    ce_sum_loss,
    dlr,
    dlr_loss,
    dlr_sum_loss,
    format_report,
    margin,
    margin_loss,
    mcnemar_exact,
    more_steps_never_help,
    pgd,
    pixel_to_input,
    repeatable,
    spsa,
    spsa_gradient,
    straight_through,
    summarize_worst_case,
    transfer,
    wilson_interval,
    worst_case,
)

try:  # the reference implementation of 4 tests; installed by `make install` (see pyproject.toml)
    import torchattacks
except ImportError:
    torchattacks = None
needs_torchattacks = pytest.mark.skipif(
    torchattacks is None, reason="torchattacks not installed: "
    "pip install --no-deps torchattacks==3.5.1 (its metadata pins requests~=2.25.1 and torchvision)")


# --------------------------------------------------------------------------- fixtures


def _binary_linear(dim: int = 10, seed: int = 0):
    """Binary classifier with logits [0, w.x + b]; returns (logits_fn, w, b)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, generator=g, dtype=torch.float64)
    w = torch.where(w.abs() < 0.1, torch.full_like(w, 0.5), w)  # no zero weights
    b = torch.tensor(0.1, dtype=torch.float64)

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        s = x @ w + b
        return torch.stack([torch.zeros_like(s), s], dim=1)

    return logits_fn, w, b


def _small_cnn(seed: int = 0, k: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, k),
    ).eval()


def _in_ball_and_clip(x_adv, x, eps, clip, atol=1e-6) -> bool:
    return bool(
        ((x_adv - x).abs() <= eps + atol).all()
        and (x_adv >= clip[0]).all()
        and (x_adv <= clip[1]).all()
    )


# --------------------------------------------------------------------------- units


def test_pixel_to_input():
    assert pixel_to_input(0.3) == pytest.approx(0.6)
    assert pixel_to_input(0.1, (0.0, 1.0)) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        pixel_to_input(0.1, (1.0, 0.0))


# --------------------------------------------------------------------------- PGD


def test_pgd_reaches_analytic_optimum_on_linear_model():
    logits_fn, w, b = _binary_linear()
    g = torch.Generator().manual_seed(1)
    n = 32
    x = torch.rand(n, w.numel(), generator=g, dtype=torch.float64) * 2 - 1
    x[:4] = x[:4].sign()  # some points sitting on the clip boundary
    y = torch.randint(0, 2, (n,), generator=g)
    eps, clip = 0.3, (-1.0, 1.0)

    # class 1 wants w.x large -> attack moves against sign(w); class 0 the other way
    s = (2 * y - 1).to(torch.float64).unsqueeze(1)
    x_star = torch.clamp(x - eps * s * w.sign(), *clip)
    loss_star = F.cross_entropy(logits_fn(x_star), y, reduction="none")

    res = pgd(ce_loss(logits_fn), x, y, eps=eps, step_size=eps / 4, steps=12, clip=clip,
              generator=g)
    assert torch.allclose(res.loss_best, loss_star, atol=1e-5, rtol=0)
    assert torch.allclose(res.x_best, x_star, atol=1e-9)
    assert _in_ball_and_clip(res.x_best, x, eps, clip)
    assert _in_ball_and_clip(res.x_final, x, eps, clip)
    assert res.misclassified is None


def test_pgd_respects_ball_and_clip_on_cnn():
    model = _small_cnn()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 1, 8, 8, generator=g) * 2 - 1
    y = torch.randint(0, 4, (6,), generator=g)
    for eps in (0.05, 0.5, 3.0):
        res = pgd(ce_loss(model), x, y, eps=eps, step_size=eps / 3, steps=5, restarts=2,
                  predict=model, generator=g)
        assert _in_ball_and_clip(res.x_best, x, eps, (-1, 1))
        assert _in_ball_and_clip(res.x_final, x, eps, (-1, 1))
        assert res.loss_best.shape == (6,) and res.misclassified.shape == (6,)
        with torch.no_grad():
            mis = model(res.x_best).argmax(1) != y
        assert torch.equal(mis, res.misclassified)


@needs_torchattacks
def test_pgd_matches_torchattacks():
    model = _small_cnn()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(8, 1, 8, 8, generator=g)
    y = torch.randint(0, 4, (8,), generator=g)
    ref = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=10, random_start=False)(x, y)
    ours = pgd(ce_loss(model), x, y, eps=0.1, step_size=0.02, steps=10, random_start=False,
               clip=(0.0, 1.0))
    assert (ref - x).abs().max() > 0.05  # the attack actually moved
    assert torch.allclose(ours.x_final, ref, atol=1e-6, rtol=0)


def test_pgd_leaves_model_state_alone():
    model = _small_cnn().train()
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    y = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():  # also works when called under no_grad
        pgd(ce_loss(model), x, y, eps=0.1, step_size=0.05, steps=2,
            generator=torch.Generator().manual_seed(0))
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_restarts_never_decrease_and_best_dominates_final():
    model = _small_cnn(seed=4)
    loss_fn = ce_loss(model)
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = torch.randint(0, 4, (16,), generator=torch.Generator().manual_seed(1))
    kw = dict(eps=0.2, step_size=0.05, steps=4)
    one = pgd(loss_fn, x, y, restarts=1, generator=torch.Generator().manual_seed(7), **kw)
    many = pgd(loss_fn, x, y, restarts=4, generator=torch.Generator().manual_seed(7), **kw)
    assert (many.loss_best >= one.loss_best).all()
    assert (many.loss_best > one.loss_best).any()
    with torch.no_grad():
        for res in (one, many):
            assert torch.allclose(loss_fn(res.x_best, y), res.loss_best)
            assert (res.loss_best >= loss_fn(res.x_final, y)).all()

    # with predict: misclassification never lost by adding restarts
    one_p = pgd(loss_fn, x, y, restarts=1, predict=model,
                generator=torch.Generator().manual_seed(7), **kw)
    many_p = pgd(loss_fn, x, y, restarts=4, predict=model,
                 generator=torch.Generator().manual_seed(7), **kw)
    assert (many_p.misclassified | ~one_p.misclassified).all()


def test_pgd_prefers_misclassified_over_higher_loss():
    # loss pushes x up (to x0 + eps, correctly classified) while predict misclassifies only
    # below x0 - 0.2, which only random starts reach: x_best must keep those starts.
    n, eps = 64, 0.5
    x = torch.zeros(n, 1)
    y = torch.zeros(n, dtype=torch.long)
    loss_fn = lambda z, _y: z[:, 0]  # noqa: E731
    predict = lambda z: torch.cat([z + 0.2, torch.zeros_like(z)], dim=1)  # noqa: E731
    res = pgd(loss_fn, x, y, eps=eps, step_size=0.2, steps=5, restarts=3, predict=predict,
              generator=torch.Generator().manual_seed(0))
    assert res.misclassified.any() and not res.misclassified.all()
    assert torch.equal(res.misclassified, predict(res.x_best).argmax(1) != y)
    mis = res.misclassified
    assert (res.x_best[mis] < -0.2).all()
    assert (res.x_best[~mis] == eps).all()
    assert (res.loss_best[mis] < loss_fn(res.x_final[mis], y[mis])).all()


def test_pgd_rejects_non_per_example_loss():
    model = _small_cnn()
    x = torch.rand(3, 1, 8, 8)
    y = torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match="per-example"):
        pgd(lambda x, y: F.cross_entropy(model(x), y), x, y, eps=0.1, step_size=0.1, steps=1)


# --------------------------------------------------------------------------- SPSA


@needs_torchattacks
@pytest.mark.parametrize("i", [0, 1, 2])
def test_spsa_matches_torchattacks_seeded(i):
    # torchattacks shares directions across a batch, we draw them per example; for a single
    # example the random streams coincide, so compare example by example.
    model = _small_cnn(seed=5)
    g = torch.Generator().manual_seed(i)
    x = torch.rand(1, 1, 8, 8, generator=g)
    y = torch.randint(0, 4, (1,), generator=g)
    torch.manual_seed(100 + i)
    ref = torchattacks.SPSA(model, eps=0.1, delta=0.01, lr=0.01, nb_iter=3, nb_sample=20,
                            max_batch_size=8)(x, y)
    ours = spsa(margin_loss(model), x, y, eps=0.1, steps=3, delta=0.01, lr=0.01, nb_sample=20,
                max_batch_size=8, clip=(0.0, 1.0),
                generator=torch.Generator().manual_seed(100 + i))
    assert (ref - x).abs().max() > 0.02
    assert torch.allclose(ours.x_final, ref, atol=1e-6, rtol=0)


def test_spsa_gradient_converges_on_quadratic():
    g = torch.Generator().manual_seed(0)
    d = 16
    a = torch.randn(3, d, generator=g, dtype=torch.float64)
    x = torch.randn(3, d, generator=g, dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.long)
    scale = torch.linspace(0.5, 2.0, d, dtype=torch.float64)

    def loss_fn(z, _y):  # rows of z repeat the 3 examples in order
        c = a.repeat(z.shape[0] // 3, 1)
        return -0.5 * (scale * (z - c) ** 2).sum(dim=1)

    true = -scale * (x - a)
    est = spsa_gradient(loss_fn, x, y, delta=0.01, nb_sample=8192, max_batch_size=1024,
                        generator=g)
    cos = F.cosine_similarity(est, true, dim=1)
    assert (cos > 0.9).all(), cos


def test_spsa_reduces_accuracy_of_linear_model():
    g = torch.Generator().manual_seed(0)
    k, d, n = 3, 20, 60
    w = torch.randn(k, d, generator=g)
    x = torch.rand(n, d, generator=g) * 2 - 1
    model = lambda z: z @ w.T  # noqa: E731
    y = model(x).argmax(1)  # clean accuracy 1
    res = spsa(margin_loss(model), x, y, eps=1.0, steps=20, lr=0.1, nb_sample=64,
               max_batch_size=64, predict=model, generator=g)
    acc = (model(res.x_best).argmax(1) == y).float().mean().item()
    assert acc < 0.2
    assert _in_ball_and_clip(res.x_best, x, 1.0, (-1, 1))
    assert _in_ball_and_clip(res.x_final, x, 1.0, (-1, 1))
    assert torch.equal(res.misclassified, model(res.x_best).argmax(1) != y)


def test_determinism_given_generator():
    model = _small_cnn(seed=6)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    y = torch.tensor([0, 1, 2, 3])

    def run_pgd(seed):
        return pgd(ce_loss(model), x, y, eps=0.2, step_size=0.05, steps=3, restarts=2,
                   predict=model, generator=torch.Generator().manual_seed(seed))

    def run_spsa(seed):
        return spsa(margin_loss(model), x, y, eps=0.2, steps=2, nb_sample=16,
                    max_batch_size=8, generator=torch.Generator().manual_seed(seed))

    for run in (run_pgd, run_spsa):
        a, b, c = run(11), run(11), run(12)
        assert torch.equal(a.x_best, b.x_best) and torch.equal(a.x_final, b.x_final)
        assert torch.equal(a.loss_best, b.loss_best)
        assert not torch.equal(a.x_final, c.x_final)


# --------------------------------------------------------------------------- BPDA / transfer


def test_straight_through_value_and_gradient():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    forward = lambda z: torch.round(z * 4) / 4 + z**3  # noqa: E731 (round kills gradient)
    surrogate = lambda z: 2.0 * z  # noqa: E731
    f = straight_through(forward, surrogate)
    out = f(x)
    assert torch.equal(out, forward(x))
    (gx,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(gx, torch.full_like(x, 2.0))

    # sequence outputs (logits per pass)
    f2 = straight_through(lambda z: [forward(z), z.sin()], lambda z: [surrogate(z), z])
    outs = f2(x)
    assert isinstance(outs, list) and torch.equal(outs[1], x.sin())
    (gx2,) = torch.autograd.grad(outs[0].sum() + outs[1].sum(), x)
    assert torch.equal(gx2, torch.full_like(x, 3.0))


def test_transfer_is_pgd_on_source():
    src = _small_cnn(seed=7)
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    y = torch.tensor([0, 1, 2, 3])
    kw = dict(eps=0.1, step_size=0.05, steps=3)
    adv = transfer(ce_loss(src), x, y, generator=torch.Generator().manual_seed(0), **kw)
    ref = pgd(ce_loss(src), x, y, generator=torch.Generator().manual_seed(0), **kw).x_best
    assert torch.equal(adv, ref)


# --------------------------------------------------------------------------- losses


def test_losses():
    torch.manual_seed(0)
    lin = nn.Linear(5, 3)
    x = torch.randn(6, 5)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    passes = lambda z: [lin(z), 2 * lin(z), lin(z) - 1]  # noqa: E731
    expect = sum(F.cross_entropy(z, y, reduction="none") for z in passes(x))
    assert torch.allclose(ce_sum_loss(passes)(x, y), expect)
    assert torch.allclose(ce_loss(lin)(x, y), F.cross_entropy(lin(x), y, reduction="none"))
    logits = lin(x)
    m = margin(logits, y)
    assert torch.equal(m > 0, logits.argmax(1) != y)
    assert (margin_loss(lin, confidence=0.0)(x, y) <= 0).all()
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    assert margin(logits, torch.tensor([1])).item() == pytest.approx(-1.0)
    assert margin(logits, torch.tensor([0])).item() == pytest.approx(2.0)


def test_dlr_by_hand_and_against_torchattacks():
    # z = (1, 3, 2, 0): sorted 3, 2, 1, 0; denominator z_π1 − z_π3 = 3 − 1 = 2
    z = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert dlr(z, torch.tensor([1])).item() == pytest.approx(-(3 - 2) / 2)   # y on top
    assert dlr(z, torch.tensor([0])).item() == pytest.approx(-(1 - 3) / 2)   # y third
    torch.manual_seed(0)
    logits, y = torch.randn(64, 10), torch.randint(0, 10, (64,))
    # invariant to shifting and positive scaling of the logits (float64: exact up to rounding)
    l64 = logits.double()
    torch.testing.assert_close(dlr(1e4 * l64 - 7.0, y), dlr(l64, y), rtol=1e-9, atol=1e-12)
    assert torch.equal(dlr(logits, y) > 0, logits.argmax(1) != y)
    lin = nn.Linear(5, 3)
    x, t = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.testing.assert_close(dlr_loss(lin)(x, t), dlr(lin(x), t))
    passes = lambda v: [lin(v), 2 * lin(v) + 1, lin(v) ** 2]  # noqa: E731
    torch.testing.assert_close(dlr_sum_loss(passes)(x, t), sum(dlr(p, t) for p in passes(x)))
    with pytest.raises(ValueError, match="K>=3"):
        dlr(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long))
    if torchattacks is not None:   # the reference code's formula (sort-based)
        ref = torchattacks.APGD.dlr_loss(None, logits, y)
        torch.testing.assert_close(dlr(logits, y), ref, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- worst case


def test_worst_case_and_summary():
    c = {
        "pgd": torch.tensor([True, True, False, True, False]),
        "spsa": torch.tensor([True, False, False, True, True]),
        "transfer": torch.tensor([True, True, True, False, True]),
    }
    assert torch.equal(worst_case(c), torch.tensor([True, False, False, False, False]))
    assert broken_by(c) == [(), ("spsa",), ("pgd", "spsa"), ("transfer",), ("pgd",)]
    s = summarize_worst_case(c)
    assert s.accuracy == pytest.approx(0.2)
    assert s.first_broken_by == [None, "spsa", "pgd", "transfer", "pgd"]
    assert s.n_broken == {"pgd": 2, "spsa": 2, "transfer": 1}
    assert s.n_only_broken == {"pgd": 1, "spsa": 1, "transfer": 1}
    with pytest.raises(ValueError):
        worst_case({"a": torch.tensor([True]), "b": torch.tensor([True, False])})
    with pytest.raises(ValueError):
        worst_case({})


# --------------------------------------------------------------------------- stats


def test_wilson_known_values():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_symmetry_and_containment(kn):
    k, n = kn
    lo, hi = wilson_interval(k, n)
    lo2, hi2 = wilson_interval(n - k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert lo == pytest.approx(1 - hi2, abs=1e-12) and hi == pytest.approx(1 - lo2, abs=1e-12)


def test_mcnemar_exact():
    a = torch.tensor([True] * 6 + [False] * 4 + [True] * 5)
    b = torch.tensor([False] * 6 + [False] * 4 + [True] * 5)
    r = mcnemar_exact(a, b)
    assert r["b01"] == 0 and r["b10"] == 6
    assert r["p_value"] == pytest.approx(2 * 0.5**6)
    r = mcnemar_exact(b, a)
    assert r["b01"] == 6 and r["b10"] == 0
    assert mcnemar_exact(a, a) == {"b01": 0, "b10": 0, "p_value": 1.0}
    # balanced discordance is not significant
    c = torch.tensor([True, False, True, False])
    d = torch.tensor([False, True, False, True])
    assert mcnemar_exact(c, d)["p_value"] == pytest.approx(1.0)


def test_accuracy_with_interval():
    r = accuracy_with_interval(torch.tensor([True] * 5 + [False] * 5))
    assert r["acc"] == 0.5 and r["n"] == 10
    assert (r["lo"], r["hi"]) == pytest.approx(wilson_interval(5, 10))


# --------------------------------------------------------------------------- checks


def _all_pass(results: list[CheckResult]) -> bool:
    return all(r.passed for r in results)


def test_check_accuracy_vanishes():
    good = accuracy_vanishes({0.1: 0.8, 0.2: 0.5, 0.3: 0.3}, large_eps_acc=0.0)
    assert _all_pass(good)
    masked = accuracy_vanishes({0.1: 0.8, 0.2: 0.5, 0.3: 0.3}, large_eps_acc=0.4)
    assert not masked[0].passed and masked[1].passed
    nonmono = accuracy_vanishes({0.1: 0.5, 0.2: 0.6}, large_eps_acc=0.0)
    assert not nonmono[1].passed


def test_check_more_steps_never_help():
    assert _all_pass(more_steps_never_help({10: 0.5, 50: 0.45, 100: 0.45}, tol=0.0))
    bad = more_steps_never_help({10: 0.5, 50: 0.6, 100: 0.4}, tol=0.01)
    assert not bad[0].passed and "10->50" in bad[0].detail
    assert _all_pass(more_steps_never_help({10: 0.5, 50: 0.505}, tol=0.01))
    conv = more_steps_never_help({10: 0.5, 50: 0.3}, tol=0.0, converged_tol=0.01)
    assert conv[0].passed and not conv[1].passed


def test_check_blackbox_not_stronger():
    n = 1000
    ok = blackbox_not_stronger(0.5, {"spsa": 0.55, "transfer": 0.49}, n)
    assert _all_pass(ok) and len(ok) == 2
    bad = blackbox_not_stronger(0.5, {"spsa": 0.40, "transfer": 0.6}, n)
    assert [r.passed for r in bad] == [False, True]
    assert not blackbox_not_stronger(0.5, 0.2, 50)[0].passed


def test_check_repeatable_and_report():
    def seeded():
        g = torch.Generator().manual_seed(0)
        return {"acc": torch.rand(1, generator=g).item(), "x": torch.rand(3, generator=g),
                "nan": float("nan")}

    assert _all_pass(repeatable(seeded))
    counter = iter(range(10))
    flaky = repeatable(lambda: {"acc": next(counter)})
    assert not flaky[0].passed

    report = format_report(repeatable(seeded) + flaky + accuracy_vanishes({}, 0.5))
    first = report.splitlines()[0]
    assert "FAILED" in first and "2 of" in first
    assert report.index("FAIL  repeatable") < report.index("ok    repeatable")
    assert "passed" in format_report(repeatable(seeded)).splitlines()[0]


def test_pgd_e2e_sum_end_to_end():
    """A small end-to-end run: sum-over-passes loss, BPDA surrogate, worst case, stats."""
    model = _small_cnn(seed=8)
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        y = model(x).argmax(1)
    passes = lambda z: [model(z), model(z.clamp(-0.9, 0.9))]  # noqa: E731
    logits_fn = straight_through(lambda z: passes(z)[-1], lambda z: model(z))
    eps = pixel_to_input(0.2)
    res_pgd = pgd(ce_sum_loss(passes), x, y, eps=eps, step_size=eps / 4, steps=8, restarts=2,
                  predict=logits_fn, generator=torch.Generator().manual_seed(0))
    res_spsa = spsa(margin_loss(logits_fn), x, y, eps=eps, steps=4, lr=0.05, nb_sample=32,
                    predict=logits_fn, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        correct = {
            "pgd": logits_fn(res_pgd.x_best).argmax(1) == y,
            "spsa": logits_fn(res_spsa.x_best).argmax(1) == y,
        }
    wc = worst_case(correct)
    assert (wc <= correct["pgd"]).all() and (wc <= correct["spsa"]).all()
    assert accuracy_with_interval(wc)["acc"] < 1.0
    assert not math.isnan(mcnemar_exact(correct["pgd"], correct["spsa"])["p_value"])
