"""L-infinity projected gradient descent (Madry et al., 2018) on a generic per-example loss.

The attack only sees callables (see :mod:`zoo.attacks.common`): ``loss_fn(x, y) -> (N,)``
to maximise and, optionally, ``predict(x) -> (N, K)`` logits of the scored readout.
Gradients are taken with :func:`torch.autograd.grad` with respect to the input only, so
parameter ``.grad`` fields are never touched and the model's train/eval mode is left as
the caller set it.  Per-example independence of the loss is assumed (e.g. no batch-norm
in training mode coupling examples).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .common import (
    AttackResult,
    BestTracker,
    Clip,
    LossFn,
    PredictFn,
    check_clip,
    misclassified,
    per_example_loss,
    project_linf,
    select,
)

__all__ = ["pgd"]


def _random_start(x: Tensor, eps: float, generator: Optional[torch.Generator]) -> Tensor:
    """Uniform noise in ``[-eps, eps]`` shaped like ``x`` (``(N, ...)``), drawn from ``generator``."""
    device = generator.device if generator is not None else x.device
    u = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    return (2.0 * u - 1.0) * eps


def _loss_and_grad(loss_fn: LossFn, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-example loss ``(N,)`` at ``x`` and its input gradient ``(N, ...)``."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        loss = per_example_loss(loss_fn, xg, y)
        (grad,) = torch.autograd.grad(loss.sum(), [xg])
    return loss.detach(), grad


def pgd(
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    restarts: int = 1,
    clip: Clip = (-1.0, 1.0),
    predict: Optional[PredictFn] = None,
    generator: Optional[torch.Generator] = None,
) -> AttackResult:
    """L-infinity PGD with random restarts and per-example best-iterate tracking.

    Each step is ``x <- proj(x + step_size * sign(grad_x loss_fn(x, y)))`` where ``proj``
    clamps the perturbation to ``[-eps, eps]`` and then the point to ``clip`` (the same
    update as torchattacks' ``PGD``).  The iterates ``x_0 .. x_steps`` of every restart
    are candidates for ``x_best``: per example, a misclassified iterate (according to
    ``predict``, when given) beats a correctly classified one, and otherwise the higher
    loss wins; ties keep the earlier iterate.

    Args:
        loss_fn: ``(x (N, ...), y (N,)) -> (N,)`` per-example loss to maximise.
        x: ``(N, ...)`` clean inputs inside ``clip``.
        y: ``(N,)`` int64 labels.
        eps: L-infinity radius in input units (see :func:`zoo.attacks.pixel_to_input`).
        step_size: signed-gradient step in input units.
        steps: number of gradient steps per restart (``0`` only evaluates the start).
        random_start: start each restart at a uniform point of the ball (clipped);
            otherwise at ``x``.  Without a random start all restarts would be identical,
            so only one is run.
        restarts: number of restarts; per example the strongest over restarts is kept.
        clip: ``(lo, hi)`` input range.
        predict: optional ``x -> (N, K)`` logits of the scored readout, used to prefer
            misclassified iterates.
        generator: random source for the starts; results are deterministic given its
            state (and a deterministic model).  ``None`` uses torch's global RNG.

    Returns:
        :class:`~zoo.attacks.common.AttackResult` with ``x_final`` (final iterate of the
        restart that produced ``x_best``, per example), ``x_best``, ``loss_best`` and
        ``misclassified`` (``None`` without ``predict``).
    """
    lo, hi = check_clip(clip)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if steps > 0 and step_size <= 0:
        raise ValueError(f"step_size must be > 0, got {step_size}")
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")

    x = x.detach()
    y = y.detach()
    n_restarts = restarts if random_start else 1

    overall = BestTracker()
    x_final: Optional[Tensor] = None
    for _ in range(n_restarts):
        if random_start:
            x_adv = torch.clamp(x + _random_start(x, eps, generator), min=lo, max=hi)
        else:
            x_adv = x.clone()

        run = BestTracker()
        for _step in range(steps):
            loss, grad = _loss_and_grad(loss_fn, x_adv, y)
            mis = misclassified(predict, x_adv, y) if predict is not None else None
            run.update(x_adv, loss, mis)
            x_adv = project_linf(x_adv + step_size * grad.sign(), x, eps, (lo, hi)).detach()
        with torch.no_grad():
            loss = per_example_loss(loss_fn, x_adv, y).detach()
        mis = misclassified(predict, x_adv, y) if predict is not None else None
        run.update(x_adv, loss, mis)

        assert run.x is not None and run.loss is not None
        improved = overall.update(run.x, run.loss, run.mis)
        x_final = x_adv.clone() if x_final is None else select(improved, x_adv, x_final)

    assert overall.x is not None and overall.loss is not None and x_final is not None
    return AttackResult(
        x_final=x_final,
        x_best=overall.x,
        loss_best=overall.loss,
        misclassified=overall.mis,
    )
