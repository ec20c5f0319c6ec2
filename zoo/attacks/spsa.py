"""L-infinity SPSA attack (Uesato et al., 2018), gradient-free.

Follows advertorch / torchattacks ``SPSA``: the gradient of the loss is estimated from
``nb_sample`` Rademacher directions ``v`` as ``(f(x + delta v) - f(x - delta v)) / (2 delta) * v``
averaged over samples; the perturbation (zero start) is updated by Adam and projected onto
the eps ball and the clip range after each step.  Unlike the reference implementation,
every example gets its own directions and all examples and samples of a chunk are
evaluated in one ``loss_fn`` call (``N * chunk`` rows).  For a single example the random
stream and the arithmetic are those of torchattacks, so seeded results coincide.

Because only loss *values* are used, SPSA is a useful gradient-masking check: it must not
be markedly stronger than white-box PGD (see :func:`zoo.attacks.checks.blackbox_not_stronger`).
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
)

__all__ = ["spsa", "spsa_gradient"]


def _chunk_sizes(n: int, max_batch_size: int) -> list[int]:
    """Split ``n`` samples into chunks of ``max_batch_size`` plus a remainder (torchattacks order)."""
    sizes = [max_batch_size] * (n // max_batch_size)
    if n % max_batch_size:
        sizes.append(n % max_batch_size)
    return sizes


@torch.no_grad()
def spsa_gradient(
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    delta: float = 0.01,
    nb_sample: int = 128,
    max_batch_size: int = 64,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """SPSA estimate of ``grad_x loss_fn(x, y)`` per example.

    Args:
        loss_fn: ``(x (M, ...), y (M,)) -> (M,)`` per-example loss.
        x: ``(N, ...)`` points.
        y: ``(N,)`` labels.
        delta: finite-difference scale (input units).
        nb_sample: number of Rademacher directions per example.
        max_batch_size: directions per chunk; each chunk calls ``loss_fn`` twice on
            ``chunk * N`` rows.
        generator: random source for the directions (``None``: torch's global RNG).

    Returns:
        ``(N, ...)`` gradient estimate.
    """
    if nb_sample < 1 or max_batch_size < 1:
        raise ValueError("nb_sample and max_batch_size must be >= 1")
    n = x.shape[0]
    feat = x.shape[1:]
    device = generator.device if generator is not None else x.device
    grad = torch.zeros_like(x)
    for b in _chunk_sizes(nb_sample, max_batch_size):
        v = torch.empty((b, n, *feat), device=device, dtype=x.dtype)
        v = v.bernoulli_(0.5, generator=generator).mul_(2.0).sub_(1.0).to(x.device)
        xs = x.unsqueeze(0).expand(b, n, *feat).reshape(b * n, *feat)
        ys = y.unsqueeze(0).expand(b, n).reshape(b * n)
        vf = v.reshape(b * n, *feat)
        f_plus = per_example_loss(loss_fn, xs + delta * vf, ys)
        f_minus = per_example_loss(loss_fn, xs - delta * vf, ys)
        df = (f_plus - f_minus).view(b, n, *([1] * len(feat)))
        grad += (df / (2.0 * delta * v)).sum(dim=0)
    return grad / nb_sample


def spsa(
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    steps: int = 7,
    delta: float = 0.01,
    lr: float = 0.01,
    nb_sample: int = 128,
    max_batch_size: int = 64,
    clip: Clip = (-1.0, 1.0),
    predict: Optional[PredictFn] = None,
    generator: Optional[torch.Generator] = None,
) -> AttackResult:
    """L-infinity SPSA: Adam ascent on ``loss_fn`` with SPSA gradient estimates.

    Args:
        loss_fn: ``(x (M, ...), y (M,)) -> (M,)`` per-example loss to maximise (a margin
            loss, :func:`zoo.attacks.margin_loss`, is the usual choice).
        x: ``(N, ...)`` clean inputs inside ``clip``.
        y: ``(N,)`` int64 labels.
        eps: L-infinity radius in input units.
        steps: number of Adam steps (torchattacks' ``nb_iter``).
        delta: finite-difference scale.
        lr: Adam learning rate (input units).
        nb_sample: Rademacher directions per example and step.
        max_batch_size: directions evaluated per ``loss_fn`` call (times ``N`` rows).
        clip: ``(lo, hi)`` input range.
        predict: optional ``x -> (N, K)`` logits, used to prefer misclassified iterates
            for ``x_best``.
        generator: random source (``None``: torch's global RNG).

    Returns:
        :class:`~zoo.attacks.common.AttackResult`; ``x_final`` is the last iterate and
        ``x_best`` the strongest of ``x, x_1 .. x_steps`` per example (one extra
        ``loss_fn`` evaluation per step).
    """
    lo, hi = check_clip(clip)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    x = x.detach()
    y = y.detach()

    tracker = BestTracker()

    def offer(x_adv: Tensor) -> None:
        with torch.no_grad():
            loss = per_example_loss(loss_fn, x_adv, y)
        mis = misclassified(predict, x_adv, y) if predict is not None else None
        tracker.update(x_adv, loss, mis)

    dx = torch.zeros_like(x)
    x_adv = x.clone()
    optimizer = torch.optim.Adam([dx], lr=lr)
    offer(x)
    for _ in range(steps):
        g = spsa_gradient(
            loss_fn,
            x + dx,
            y,
            delta=delta,
            nb_sample=nb_sample,
            max_batch_size=max_batch_size,
            generator=generator,
        )
        dx.grad = -g  # Adam minimises; we maximise the loss
        optimizer.step()
        with torch.no_grad():
            x_adv = torch.clamp(x + torch.clamp(dx, min=-eps, max=eps), min=lo, max=hi)
            # in place, so that Adam keeps tracking the same tensor
            dx.copy_(x_adv - x)
        offer(x_adv)

    x_final = x_adv.detach()
    assert tracker.x is not None and tracker.loss is not None
    return AttackResult(
        x_final=x_final, x_best=tracker.x, loss_best=tracker.loss, misclassified=tracker.mis
    )
