"""APGD (zoo.attacks.apgd) against a hand-traced trajectory, the reference code's checkpoint
formula worked out by hand, torchattacks' port of the reference code (CE and DLR losses), and
the exact robust accuracy of a linear model whose softmax saturates."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.attacks import apgd, ce_loss, dlr_loss
from zoo.attacks.apgd import checkpoints


pytestmark = pytest.mark.usefixtures("one_thread")  # (tests/zoo/conftest.py)


def test_checkpoints_by_hand():
    # 100 steps: first window 22, windows shrink by 3 down to 6.
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    # 40 steps: first window 8, shrink by 1 down to 2.
    assert checkpoints(40) == [8, 15, 21, 26, 30, 33, 35, 37, 39]
    # 10 steps: first window 2, then every step.
    assert checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert checkpoints(0) == []


def test_trajectory_traced_by_hand():
    """One scalar input, f(v) = -(v - 0.3)², ε = 1, no random start, 10 steps (checkpoints
    after every step from 2 on). Traced by hand from Algorithm 1 (η = 2ε, α = 0.75):
    x1 = 1 (plain step, clipped to the ball); x2 = 1 + 0.75·(−1 − 1) + 0.25·(1 − 0) = −0.25;
    checkpoint 2: 1 of 2 steps went up (≤ 1.5) → η = 1, restart from x_max = x0 = 0;
    x3 = 0 + 0.75·(1 − 0) + 0.25·(0 − 1) = 0.5; checkpoint 3: 1 of 1 up, no halving;
    x4 = 0.5 + 0.75·(−0.5 − 0.5) + 0.25·(0.5 − 0) = −0.125; checkpoint 4: 0 of 1 up → η = 0.5,
    back to x_max = 0.5; x5 = 0.5 + 0.75·(0 − 0.5) + 0.25·(0.5 − 0.5) = 0.125;
    x6 = 0.125 + 0.75·(0.625 − 0.125) + 0.25·(0.125 − 0.5) = 0.40625;
    x7 = 0.40625 + 0.75·(−0.09375 − 0.40625) + 0.25·(0.40625 − 0.125) = 0.1015625 (down →
    η = 0.25, back to 0.40625); x8 = 0.40625 + 0.75·(0.15625 − 0.40625) + 0.25·0 = 0.21875."""
    seen = []

    def loss_fn(v, y):
        seen.append(float(v[0, 0].detach()))
        return -(v[:, 0] - 0.3) ** 2

    x = torch.zeros(1, 1, dtype=torch.float64)
    res = apgd(loss_fn, x, torch.zeros(1, dtype=torch.long), eps=1.0, steps=10,
               random_start=False, clip=(-10.0, 10.0))
    want = [0.0, 1.0, -0.25, 0.5, -0.125, 0.125, 0.40625, 0.1015625, 0.21875]
    assert seen[:len(want)] == pytest.approx(want, abs=1e-12)
    i = max(range(len(seen)), key=lambda j: (-(seen[j] - 0.3) ** 2, -j))
    assert float(res.x_best) == pytest.approx(seen[i], abs=1e-12)
    assert float(res.loss_best) == pytest.approx(-(seen[i] - 0.3) ** 2, abs=1e-12)


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 5)).eval()


class _Sin(nn.Module):
    def forward(self, v):
        return torch.sin(12 * v)


def _wiggly(seed: int = 0) -> nn.Module:
    """A classifier whose loss oscillates along sign-gradient steps, so that APGD halves its
    step, restarts from earlier iterates and meets both checkpoint conditions."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), _Sin(), nn.Linear(16, 5)).eval()


def _data(n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
@pytest.mark.parametrize("steps", [10, 25, 50])
@pytest.mark.parametrize("build", [_cnn, _wiggly])
def test_matches_torchattacks_single_run(steps, build, loss):
    torchattacks = pytest.importorskip("torchattacks")
    model, (x, y) = build(), _data(64)
    eps = 0.1
    ref = torchattacks.APGD(model, eps=eps, steps=steps, n_restarts=1, seed=0, loss=loss)
    torch.manual_seed(7)
    ref_best, _, ref_loss, _ = ref.attack_single_run(x, y)
    loss_fn = {"ce": ce_loss, "dlr": dlr_loss}[loss](model)
    res = apgd(loss_fn, x, y, eps=eps, steps=steps, clip=(0.0, 1.0),
               generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(res.x_best, ref_best, rtol=0, atol=0)
    torch.testing.assert_close(res.loss_best, ref_loss, rtol=0, atol=0)


def test_ball_clip_and_early_stop():
    model = _cnn().double()
    x, y = _data(24)
    x = x.double()
    predict = model
    full = apgd(ce_loss(model), x, y, eps=0.05, steps=12, restarts=2, clip=(0.0, 1.0),
                predict=predict, early_stop=False, generator=torch.Generator().manual_seed(3))
    fast = apgd(ce_loss(model), x, y, eps=0.05, steps=12, restarts=2, clip=(0.0, 1.0),
                predict=predict, generator=torch.Generator().manual_seed(3))
    for r in (full, fast):
        assert ((r.x_best - x).abs() <= 0.05 + 1e-12).all()
        assert (r.x_best >= 0).all() and (r.x_best <= 1).all()
        assert torch.equal(r.misclassified, model(r.x_best).argmax(1) != y)
    assert torch.equal(full.misclassified, fast.misclassified)
    assert 0 < int(fast.misclassified.sum()) < len(y)  # both outcomes occur
    robust = ~fast.misclassified
    torch.testing.assert_close(fast.x_best[robust], full.x_best[robust])


def test_restarts_run_only_on_survivors():
    model, (x, y) = _cnn(), _data(24)
    sizes = []

    def loss_fn(v, t):
        sizes.append(len(v))
        return F.cross_entropy(model(v), t, reduction="none")

    res = apgd(loss_fn, x, y, eps=0.05, steps=6, restarts=2, clip=(0.0, 1.0), predict=model,
               early_stop=False, generator=torch.Generator().manual_seed(0))
    first = sizes[:7]
    assert first == [len(y)] * 7
    survivors_after_first = sizes[7]
    assert survivors_after_first < len(y) and sizes[7:] == [survivors_after_first] * 7
    assert int((~res.misclassified).sum()) <= survivors_after_first


def _exact_robust(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                  eps: float, clip=(-1.0, 1.0)) -> torch.Tensor:
    """Exact robustness of the linear classifier ``z = x w^T + b`` in the L∞ ball ∩ box, by
    brute force over the rival class: for each j ≠ y the largest ``z_j − z_y`` is separable
    per coordinate (each ``x_i`` goes to the end of ``[max(lo, x_i − ε), min(hi, x_i + ε)]``
    that the sign of ``w_j − w_y`` favours)."""
    lo, hi = (x - eps).clamp(min=clip[0]), (x + eps).clamp(max=clip[1])
    robust = torch.ones(len(y), dtype=torch.bool)
    for j in range(w.shape[0]):
        d = w[j] - w[y]                                   # (N, D)
        best = torch.where(d > 0, hi, lo)
        gap = (d * best).sum(1) + b[j] - b[y]
        robust &= (gap < 0) | (j == y)
    return robust


def test_dlr_breaks_what_a_saturated_softmax_hides():
    """Logits ×10⁴: float32's softmax is exactly one-hot, the cross-entropy's gradient exactly
    0, so APGD-CE breaks nothing; APGD-DLR (scale-free) finds every breakable image (the exact
    count comes from brute force over the rival class)."""
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(5, 20, generator=g), torch.randn(5, generator=g)
    x = torch.rand(200, 20, generator=g) * 2 - 1
    y = (x @ w.T + b).argmax(1)
    eps = 0.04
    robust = _exact_robust(w.double(), b.double(), x.double(), y, eps)
    assert 0.2 < robust.float().mean() < 0.8                       # both outcomes occur
    model = lambda v: 1e4 * (v @ w.T + b)  # noqa: E731
    p = torch.softmax(model(x), 1)
    assert (p.max(1).values == 1.0).float().mean() > 0.9           # saturated
    kw = dict(eps=eps, steps=50, restarts=1, clip=(-1.0, 1.0), predict=model,
              generator=torch.Generator().manual_seed(1))
    ce = apgd(ce_loss(model), x, y, **kw)
    dlr = apgd(dlr_loss(model), x, y, **kw)
    broken_ce, broken_dlr = int(ce.misclassified.sum()), int(dlr.misclassified.sum())
    breakable = int((~robust).sum())
    assert broken_ce < breakable // 2, (broken_ce, breakable)
    assert broken_dlr == breakable, (broken_dlr, breakable)
    assert not (dlr.misclassified & robust).any()                  # nothing the math forbids
