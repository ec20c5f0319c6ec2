"""Shared pieces of the attack package: result type, units, projection, best-iterate bookkeeping.

Conventions used throughout :mod:`zoo.attacks`:

* Inputs live in the model's *input* range, by default ``[-1, 1]`` (``clip=(-1.0, 1.0)``).
* ``eps`` and step sizes are in **input units**.  The paper (and most of the literature)
  quotes L-infinity budgets in ``[0, 1]`` *pixel* units; convert with
  :func:`pixel_to_input`, e.g. ``pixel_to_input(0.3) == 0.6`` for inputs in ``[-1, 1]``.
* An attack receives plain callables rather than models:

  - ``loss_fn(x, y) -> Tensor (N,)``: per-example loss that the attack **maximises**;
  - ``predict(x) -> Tensor (N, K)``: logits of the *scored* readout, used only to prefer
    misclassified iterates when tracking the best one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(x (N, ...), y (N,) int64) -> (N,)`` per-example loss to maximise."""

PredictFn = Callable[[Tensor], Tensor]
"""``predict(x (N, ...)) -> (N, K)`` logits of the scored readout."""

Clip = Tuple[float, float]


@dataclass
class AttackResult:
    """Outcome of an iterative attack on a batch of ``N`` examples.

    Attributes:
        x_final: ``(N, ...)`` final iterate, per example taken from the restart that
            produced ``x_best``.
        x_best: ``(N, ...)`` per example, the strongest iterate seen over all steps and
            restarts: a misclassified one if any (when ``predict`` was given), otherwise
            the one with the highest loss.
        loss_best: ``(N,)`` value of ``loss_fn`` at ``x_best``.
        misclassified: ``(N,)`` bool, whether ``predict`` misclassified ``x_best`` when it
            was tracked; ``None`` when no ``predict`` was given.
    """

    x_final: Tensor
    x_best: Tensor
    loss_best: Tensor
    misclassified: Optional[Tensor] = None


def pixel_to_input(eps_pixel: float, input_range: Clip = (-1.0, 1.0)) -> float:
    """Convert an L-infinity budget from ``[0, 1]`` pixel units to input units.

    The paper's budgets (e.g. ``eps = 0.1, 0.2, 0.3`` on Fashion-MNIST) are in pixel units;
    the models here consume inputs in ``input_range`` (default ``[-1, 1]``), so a budget is
    scaled by the width of that range (``x 2`` for ``[-1, 1]``).

    Args:
        eps_pixel: budget (or step size) in ``[0, 1]`` pixel units.
        input_range: ``(lo, hi)`` range of the model inputs.

    Returns:
        The same budget in input units.
    """
    lo, hi = input_range
    if not hi > lo:
        raise ValueError(f"input_range must satisfy lo < hi, got {input_range}")
    return float(eps_pixel) * (float(hi) - float(lo))


def check_clip(clip: Clip) -> Clip:
    """Validate a ``(lo, hi)`` clip range and return it as floats."""
    lo, hi = float(clip[0]), float(clip[1])
    if not hi > lo:
        raise ValueError(f"clip must satisfy lo < hi, got {clip}")
    return lo, hi


def project_linf(x_adv: Tensor, x: Tensor, eps: float, clip: Clip) -> Tensor:
    """Project ``x_adv`` onto the L-infinity ball of radius ``eps`` around ``x`` and the clip box.

    Args:
        x_adv: ``(N, ...)`` candidate points.
        x: ``(N, ...)`` clean points (centres of the balls).
        eps: radius in input units.
        clip: ``(lo, hi)`` input range.

    Returns:
        ``(N, ...)`` projected points (the same operations, in the same order, as
        torchattacks' PGD: clamp the perturbation, then clamp the image).
    """
    delta = torch.clamp(x_adv - x, min=-eps, max=eps)
    return torch.clamp(x + delta, min=clip[0], max=clip[1])


def per_example_loss(loss_fn: LossFn, x: Tensor, y: Tensor) -> Tensor:
    """Evaluate ``loss_fn`` and check that it is per-example.

    Returns:
        ``(N,)`` losses.
    """
    loss = loss_fn(x, y)
    if not isinstance(loss, Tensor) or loss.shape != (x.shape[0],):
        shape = getattr(loss, "shape", type(loss))
        raise ValueError(
            f"loss_fn must return a per-example loss of shape ({x.shape[0]},), got {shape}"
        )
    return loss


@torch.no_grad()
def misclassified(predict: PredictFn, x: Tensor, y: Tensor) -> Tensor:
    """Return ``(N,)`` bool: ``argmax predict(x) != y``."""
    logits = predict(x)
    if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"predict must return logits of shape (N, K), got {tuple(logits.shape)}")
    return logits.argmax(dim=1) != y


def is_better(
    loss_new: Tensor,
    loss_old: Tensor,
    mis_new: Optional[Tensor] = None,
    mis_old: Optional[Tensor] = None,
) -> Tensor:
    """Per-example "new iterate is stronger than the old one" mask.

    Ordering: misclassified beats correctly classified (when misclassification is
    tracked); within the same status, strictly higher loss wins (ties keep the old
    iterate, so earlier steps/restarts win ties and results are reproducible).  A NaN
    loss never wins.

    Args:
        loss_new, loss_old: ``(N,)`` losses.
        mis_new, mis_old: ``(N,)`` bool misclassification flags, or ``None``.

    Returns:
        ``(N,)`` bool mask.
    """
    higher = loss_new > loss_old
    if mis_new is None or mis_old is None:
        return higher
    return (mis_new & ~mis_old) | ((mis_new == mis_old) & higher)


def select(mask: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per-example ``torch.where``: rows of ``new`` where ``mask`` (``(N,)``) else rows of ``old``."""
    m = mask.view(-1, *([1] * (new.dim() - 1)))
    return torch.where(m, new, old)


class BestTracker:
    """Keeps, per example, the strongest iterate seen so far (see :func:`is_better`).

    Attributes (after the first :meth:`update`):
        x: ``(N, ...)`` best iterates.
        loss: ``(N,)`` their losses.
        mis: ``(N,)`` bool misclassification flags, or ``None`` if not tracked.
    """

    def __init__(self) -> None:
        self.x: Optional[Tensor] = None
        self.loss: Optional[Tensor] = None
        self.mis: Optional[Tensor] = None

    def update(self, x: Tensor, loss: Tensor, mis: Optional[Tensor] = None) -> Tensor:
        """Offer a new batch of iterates; returns the ``(N,)`` mask of examples that improved."""
        x, loss = x.detach(), loss.detach()
        if self.x is None:
            self.x, self.loss, self.mis = x.clone(), loss.clone(), mis
            return torch.ones_like(loss, dtype=torch.bool)
        assert self.loss is not None
        better = is_better(loss, self.loss, mis, self.mis)
        self.x = select(better, x, self.x)
        self.loss = torch.where(better, loss, self.loss)
        if mis is not None and self.mis is not None:
            self.mis = torch.where(better, mis, self.mis)
        return better
