"""Transfer attack: craft adversarial examples with PGD on a *source* model, score on the target.

A transfer (black-box) attack that is markedly stronger than white-box PGD on the target
is a sign of gradient masking in the target (see :mod:`zoo.attacks.checks`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .common import LossFn
from .pgd import pgd

__all__ = ["transfer"]


def transfer(source_loss_fn: LossFn, x: Tensor, y: Tensor, **pgd_kwargs: Any) -> Tensor:
    """PGD on a source model; the returned points are to be scored by the target model.

    Args:
        source_loss_fn: ``(x (N, ...), y (N,)) -> (N,)`` per-example loss of the source model.
        x: ``(N, ...)`` clean inputs.
        y: ``(N,)`` labels.
        **pgd_kwargs: keyword arguments of :func:`zoo.attacks.pgd` (``eps``, ``step_size``,
            ``steps``, ``restarts``, ``clip``, ``generator``, and ``predict`` of the
            *source* readout if the best iterate should prefer source misclassification).

    Returns:
        ``(N, ...)`` adversarial inputs: PGD's ``x_best`` on the source model.
    """
    return pgd(source_loss_fn, x, y, **pgd_kwargs).x_best
