"""Backward Pass Differentiable Approximation (BPDA, Athalye et al., 2018).

When a model's forward pass is non-differentiable or its gradient is uninformative
(obfuscated), the attacker can keep the true forward value but back-propagate through a
differentiable *surrogate*.  :func:`straight_through` builds such a function:

    value    = forward_fn(x)
    gradient = d surrogate_fn(x) / dx

i.e. ``surrogate(x) + (forward(x) - surrogate(x)).detach()``.

For CNN-F the evaluation's "bpda" target (``zoo.evaluation.targets.bpda_surrogate``) keeps the
value of the scored readout after every feedback cycle and takes the gradient of the network
with the latents (switches, pool positions) of the finished inference held fixed and the
h-update treated as the identity. The classic use on a non-differentiable preprocessing ``g``
is ``straight_through(g, lambda x: x)`` composed with the classifier.

Typical use (``full`` and ``surrogate`` map ``x`` to logits of the same shape)::

    logits_fn = straight_through(full, surrogate)
    res = pgd(ce_loss(logits_fn), x, y, eps=..., step_size=..., steps=..., predict=full)
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

from torch import Tensor

__all__ = ["straight_through"]

Output = Union[Tensor, Sequence[Tensor]]


def _combine(value: Output, surrogate: Output) -> Output:
    """Value of ``value`` with the autograd graph of ``surrogate`` (recursing into sequences)."""
    if isinstance(value, Tensor):
        if not isinstance(surrogate, Tensor) or surrogate.shape != value.shape:
            raise ValueError("forward_fn and surrogate_fn must return outputs of the same shape")
        # Equivalent to surrogate + (value - surrogate).detach(), but the value is exactly
        # ``value`` (s - s.detach() is exactly zero for finite s).
        return value.detach() + (surrogate - surrogate.detach())
    if isinstance(value, (list, tuple)) and isinstance(surrogate, (list, tuple)):
        if len(value) != len(surrogate):
            raise ValueError("forward_fn and surrogate_fn must return the same number of outputs")
        return type(value)(_combine(v, s) for v, s in zip(value, surrogate))
    raise TypeError(f"unsupported output types {type(value)} / {type(surrogate)}")


def straight_through(
    forward_fn: Callable[[Tensor], Output],
    surrogate_fn: Callable[[Tensor], Output],
) -> Callable[[Tensor], Output]:
    """Combine a forward pass with the gradient of a surrogate (BPDA).

    Args:
        forward_fn: ``x (N, ...) -> out``, the true (possibly non-differentiable) function;
            ``out`` is a tensor or a list/tuple of tensors (e.g. logits per pass).
        surrogate_fn: ``x (N, ...) -> out`` of the same structure and shapes, differentiable.

    Returns:
        A callable ``x -> out`` whose value equals ``forward_fn(x)`` and whose gradient with
        respect to ``x`` (and anything else) is that of ``surrogate_fn(x)``.
    """

    def bpda_fn(x: Tensor) -> Output:
        # Not under no_grad: forward_fn may use autograd internally; its graph is dropped
        # as soon as the detached value is returned.
        return _combine(forward_fn(x), surrogate_fn(x))

    bpda_fn.__doc__ = "BPDA: value of forward_fn, gradient of surrogate_fn."
    return bpda_fn
