"""Auto-PGD (APGD, Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", Algorithm 1) on a generic per-example loss.

L-infinity PGD with momentum and a step size that adapts itself, as in the authors' reference
code (``autopgd_base.py`` of AutoAttack; torchattacks' ``APGD`` is a port). With
``P`` the projection onto the ε-ball around ``x`` and the clip box, ``η = 2ε`` at first and
``α = 0.75``:

* ``x₁ = P(x₀ + η·sign ∇f(x₀))``; for ``k ≥ 1``: ``z = P(x_k + η·sign ∇f(x_k))``,
  ``x_{k+1} = P(x_k + α(z − x_k) + (1 − α)(x_k − x_{k−1}))``;
* ``x_max`` is the iterate of highest loss so far (strictly higher replaces it);
* after the iterate ``x_w`` of every checkpoint ``w`` (see :func:`checkpoints`), per example,
  η is halved and the walk restarts from ``x_max`` (and its gradient) when

  1. the loss went up from one iterate to the next in at most ``ρ·(w − w')`` of the
     ``w − w'`` steps since the previous checkpoint ``w'`` (``ρ = 0.75``), or
  2. η was not halved at the previous checkpoint and the highest loss has not grown since.

Two details follow the reference code rather than the paper: condition 2 cannot fire at the
first checkpoint, and in the first window the first step's loss is compared with 0, not with
the start's loss. The start is ``x₀ = clip(x + ε·u / ‖u‖∞)``, ``u`` uniform in ``[−1, 1]``
(drawn from ``generator`` with the shape of ``x``, as torchattacks draws it from torch's global
generator). Restarts run only on the examples no earlier restart misclassified (when
``predict`` is given); with ``early_stop`` an example also leaves a run as soon as one of its
iterates is misclassified, which changes nothing else (examples are independent).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .common import (
    AttackResult,
    Clip,
    LossFn,
    PredictFn,
    check_clip,
    is_better,
    misclassified,
    per_example_loss,
)

__all__ = ["apgd", "checkpoints"]


def checkpoints(steps: int) -> list[int]:
    """APGD's checkpoints for ``steps`` iterations (reference code): the first after
    ``k = max(⌊0.22·steps⌋, 1)`` steps, each next one ``k`` steps later with ``k`` shrinking by
    ``max(⌊0.03·steps⌋, 1)`` down to ``max(⌊0.06·steps⌋, 1)``; those ``<= steps``.

    Example: ``checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]``.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    k = max(int(0.22 * steps), 1)
    k_min, decrease = max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    out, w = [], k
    while w <= steps:
        out.append(w)
        k = max(k - decrease, k_min)
        w += k
    return out


def _project(v: Tensor, x: Tensor, eps: float, clip: Clip) -> Tensor:
    """``v`` clamped to ``[x − eps, x + eps]``, then to ``clip`` (the reference code's order)."""
    return torch.min(torch.max(v, x - eps), x + eps).clamp(clip[0], clip[1])


def _loss_and_grad(loss_fn: LossFn, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        loss = per_example_loss(loss_fn, xg, y)
        (grad,) = torch.autograd.grad(loss.sum(), [xg])
    return loss.detach(), grad.detach()


def _start(x: Tensor, eps: float, clip: Clip, random_start: bool,
           generator: Optional[torch.Generator]) -> Tensor:
    if not random_start:
        return x.clone()
    device = generator.device if generator is not None else x.device
    t = 2 * torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device) - 1
    scale = t.reshape(len(t), -1).abs().max(dim=1).values.clamp_min(1e-12)
    return (x + eps * t / scale.view(-1, *([1] * (x.dim() - 1)))).clamp(clip[0], clip[1])


class _Best:
    """Per example of the whole batch, the strongest iterate offered (see ``is_better``)."""

    def __init__(self, x: Tensor) -> None:
        self.x = x.clone()
        self.final = x.clone()
        self.loss = torch.full((len(x),), float("-inf"), dtype=x.dtype, device=x.device)
        self.mis: Optional[Tensor] = None

    def offer(self, rows: Tensor, x: Tensor, loss: Tensor, mis: Optional[Tensor]) -> None:
        if mis is not None and self.mis is None:
            self.mis = torch.zeros(len(self.x), dtype=torch.bool, device=x.device)
        old_mis = None if self.mis is None else self.mis[rows]
        better = is_better(loss, self.loss[rows], mis, old_mis) | self.loss[rows].isneginf()
        take = rows[better]
        self.x[take], self.loss[take] = x[better], loss[better]
        if mis is not None and self.mis is not None:
            self.mis[take] = mis[better]
        self.final[rows] = x


def _run(loss_fn: LossFn, x: Tensor, y: Tensor, rows: Tensor, best: _Best, *, eps: float,
         steps: int, rho: float, alpha: float, clip: Clip, predict: Optional[PredictFn],
         early_stop: bool, random_start: bool, generator: Optional[torch.Generator]) -> None:
    """One APGD run on the examples ``rows`` of ``(x, y)``, offering every iterate to ``best``."""
    xc, yc = x[rows], y[rows]
    x_cur = _start(xc, eps, clip, random_start, generator)
    loss, grad = _loss_and_grad(loss_fn, x_cur, yc)
    mis = misclassified(predict, x_cur, yc) if predict is not None else None
    best.offer(rows, x_cur, loss, mis)
    shape = (-1,) + (1,) * (x.dim() - 1)
    s = dict(rows=rows, xc=xc, yc=yc, x_cur=x_cur, x_prev=x_cur.clone(), grad=grad,
             x_max=x_cur.clone(), f_max=loss.clone(), g_max=grad.clone(),
             eta=torch.full_like(loss, 2.0 * eps), f_last=torch.zeros_like(loss),
             ups=torch.zeros_like(loss), reduced=torch.ones_like(loss, dtype=torch.bool),
             f_max_check=loss.clone())
    marks, previous = set(checkpoints(steps)), 0
    for k in range(steps):
        if early_stop and mis is not None and mis.any():
            s = {key: v[~mis] for key, v in s.items()}
            if not len(s["rows"]):
                return
        a = 1.0 if k == 0 else alpha
        x_cur, x_prev, xc, eta = s["x_cur"], s["x_prev"], s["xc"], s["eta"].view(shape)
        z = _project(x_cur + eta * s["grad"].sign(), xc, eps, clip)
        x_new = _project(x_cur + (z - x_cur) * a + (x_cur - x_prev) * (1 - a), xc, eps, clip)
        loss, grad = _loss_and_grad(loss_fn, x_new, s["yc"])
        mis = misclassified(predict, x_new, s["yc"]) if predict is not None else None
        best.offer(s["rows"], x_new, loss, mis)
        s["ups"] += (loss > s["f_last"]).to(loss.dtype)
        up = loss > s["f_max"]
        s["x_max"][up], s["f_max"][up], s["g_max"][up] = x_new[up], loss[up], grad[up]
        s.update(x_prev=x_cur, x_cur=x_new, grad=grad, f_last=loss)
        if k + 1 in marks:
            window, previous = k + 1 - previous, k + 1
            halve = (s["ups"] <= rho * window) | (~s["reduced"] & (s["f_max_check"] >= s["f_max"]))
            s["eta"] = torch.where(halve, s["eta"] / 2, s["eta"])
            s["x_cur"] = torch.where(halve.view(shape), s["x_max"], s["x_cur"])
            s["grad"] = torch.where(halve.view(shape), s["g_max"], s["grad"])
            s.update(reduced=halve, f_max_check=s["f_max"].clone(), ups=torch.zeros_like(loss))


def apgd(
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    steps: int,
    restarts: int = 1,
    rho: float = 0.75,
    alpha: float = 0.75,
    random_start: bool = True,
    clip: Clip = (-1.0, 1.0),
    predict: Optional[PredictFn] = None,
    early_stop: bool = True,
    generator: Optional[torch.Generator] = None,
) -> AttackResult:
    """L-infinity APGD with restarts (see the module docstring for the algorithm).

    Args:
        loss_fn: ``(x (N, ...), y (N,)) -> (N,)`` per-example loss to maximise (e.g. the sum of
            the cross-entropies of every CNN-F pass, :func:`zoo.attacks.ce_sum_loss`).
        x: ``(N, ...)`` clean inputs inside ``clip``.
        y: ``(N,)`` int64 labels.
        eps: L-infinity radius in input units (the first step size is ``2·eps``).
        steps: iterations per restart (one loss and gradient evaluation each, plus the start).
        restarts: runs from independent random starts; with ``predict``, a restart runs only
            on the examples still correctly classified.
        rho: fraction of loss increases below which a checkpoint halves the step (0.75).
        alpha: momentum weight of the new step (0.75).
        random_start: start at a random corner-scaled point of the ball, else at ``x`` (then a
            single run).
        clip: ``(lo, hi)`` input range.
        predict: optional ``x -> (N, K)`` logits of the scored readout; misclassified iterates
            are preferred for ``x_best`` and end an example's attack when ``early_stop``.
        early_stop: stop attacking an example once ``predict`` misclassifies one of its iterates.
        generator: random source of the starts.

    Returns:
        :class:`~zoo.attacks.common.AttackResult`: ``x_best`` per example the strongest iterate
        over all runs (a misclassified one if any, else the highest loss; ties keep the
        earlier), ``loss_best`` its loss, ``x_final`` the last iterate of the latest run on that
        example, ``misclassified`` (``None`` without ``predict``).
    """
    lo, hi = check_clip(clip)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if steps < 0 or restarts < 1:
        raise ValueError(f"need steps >= 0 and restarts >= 1, got {steps} and {restarts}")
    if not 0 < alpha <= 1 or not 0 <= rho <= 1:
        raise ValueError(f"need 0 < alpha <= 1 and 0 <= rho <= 1, got {alpha} and {rho}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    x, y = x.detach(), y.detach()
    best = _Best(x)
    for _ in range(restarts if random_start else 1):
        todo = torch.ones(len(x), dtype=torch.bool, device=x.device)
        if best.mis is not None:
            todo = ~best.mis
        rows = todo.nonzero().squeeze(1)
        if not len(rows):
            break
        _run(loss_fn, x, y, rows, best, eps=eps, steps=steps, rho=rho, alpha=alpha,
             clip=(lo, hi), predict=predict, early_stop=early_stop and predict is not None,
             random_start=random_start, generator=generator)
    return AttackResult(x_final=best.final, x_best=best.x, loss_best=best.loss,
                        misclassified=best.mis)
