"""What an attack differentiates: ``loss_fn`` / ``predict`` pairs built from a ``CNNF`` model.

Every target is scored on the *same* readout ("last" or "avg" logits of the full model); the
targets differ only in the function whose gradient the attack follows:

* ``"first"``: cross-entropy of the plain feedforward pass (pass 0) alone -- the feedback is
  invisible to the attacker (for CNN-F this is a transfer attack from its own first pass);
* ``"e2e"``: cross-entropy of the scored readout, differentiated through every cycle;
* ``"e2e-sum"``: the sum of the cross-entropies of all passes 0..C, through every cycle;
* ``"bpda"``: straight-through (BPDA, Athalye et al. 2018). The value is the scored readout of
  the full model; the gradient is that of a surrogate in which (i) the switch and pool latents
  (z, t) of every pass are held at the values the full inference chose for this input
  (detached) and the frozen norm scales are detached, and (ii) the h-updates are treated as the
  identity, i.e. every pass sees h = f(x) (the encoder features of the input itself) instead of
  the rendered / damped h_c. The surrogate of pass c is therefore the piecewise-linear network
  ``s(f(x); z_c, t_c)`` (``DGM.logits`` with ``h = f(x)``); for "avg" the surrogates of all
  passes are averaged. This side-steps the flat gradients of the exact h-step (with τ² = ∞ the
  updated h is the rendering g₀, which depends on x only through discrete latents).

For a model with ``cycles == 0`` all targets are the same function (the CNN).

Each target is differentiated through a loss of its logits (``LOSSES``): the cross-entropy
("ce", the default) or the difference of logits ratio ("dlr", Croce & Hein 2020), which is
invariant to the logits' scale and so keeps its gradient where the softmax saturates; for
"e2e-sum" the loss is summed over the passes.

``predict`` (used by PGD only to prefer misclassified iterates) is the attacked function for
"first" and the scored readout otherwise; it reuses the logits of the preceding ``loss_fn``
call on the same input, so tracking the best iterate costs no extra pass.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

import inference
from zoo.attacks import cross_entropy, dlr, of_readout, straight_through, summed_over_passes
from zoo.attacks.losses import LogitsLoss
from zoo.attacks.common import LossFn, PredictFn
from zoo.models.cnnf import CNNF

TARGETS = ("first", "e2e", "e2e-sum", "bpda")


LOSSES: dict[str, LogitsLoss] = {"ce": cross_entropy, "dlr": dlr}


class _LastLogits:
    """Memo of the last logits computed for an input: ``get(x)`` returns them if ``x`` equals
    the remembered input exactly (the model is deterministic), else None."""

    def __init__(self) -> None:
        self.x: Tensor | None = None
        self.logits: Tensor | None = None

    def put(self, x: Tensor, logits: Tensor) -> Tensor:
        self.x, self.logits = x.detach().clone(), logits.detach()
        return logits

    def get(self, x: Tensor) -> Tensor | None:
        if self.x is not None and self.x.shape == x.shape and torch.equal(self.x, x.detach()):
            return self.logits
        return None


def _memoized(fn: Callable[[Tensor], Tensor], memo: _LastLogits) -> Callable[[Tensor], Tensor]:
    """``fn`` that records its output in ``memo``."""
    return lambda x: memo.put(x, fn(x))


def _predict_from(memo: _LastLogits, fn: Callable[[Tensor], Tensor]) -> PredictFn:
    """Logits from ``memo`` when it holds ``x``, else ``fn(x)`` without gradients."""

    def predict(x: Tensor) -> Tensor:
        hit = memo.get(x)
        if hit is not None:
            return hit
        with torch.no_grad():
            return memo.put(x, fn(x))

    return predict


def bpda_surrogate(net: CNNF, x: Tensor, readout: str) -> tuple[Tensor, Tensor]:
    """``(value, surrogate)`` logits (N, K) of the BPDA target (see the module docstring).

    ``value`` is the full model's ``readout`` logits (no graph); ``surrogate`` carries the
    gradient of the fixed-latent, identity-h-update network with respect to ``x``.
    """
    params = net.params()
    record = "cycle" if readout == "avg" else "none"
    with torch.no_grad():
        res = inference.alternating_map(net.dgm, params, x, cycles=net.cycles,
                                        options=net.options, record=record)
    value = net.readout_logits(res.logits, readout)
    states = res.states if readout == "avg" else [res.state]
    h = net.dgm.encode(params, x)
    surrogates = [net.dgm.logits(params, s, h=h) for s in states]
    return value, torch.stack(surrogates).mean(0)


def build_target(net: CNNF, target: str, readout: str, loss: str = "ce"
                 ) -> tuple[LossFn, PredictFn]:
    """``(loss_fn, predict)`` for attacking ``net`` scored on ``readout``.

    Args:
        net: the model (``cycles = 0`` gives the CNN; every target is then the same function).
        target: one of ``TARGETS``.
        readout: the scored readout, "last" or "avg".
        loss: a key of ``LOSSES`` ("ce" or "dlr"), applied to the target's logits (to each
            pass's and summed for "e2e-sum").
    Returns:
        ``loss_fn(x (N, ...), y (N,)) -> (N,)`` to maximise and ``predict(x) -> (N, K)``.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if readout not in ("last", "avg"):
        raise ValueError(f"readout must be 'last' or 'avg', got {readout!r}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {loss!r}")
    of_logits = LOSSES[loss]
    memo = _LastLogits()
    scored = lambda x: net(x, readout=readout)  # noqa: E731
    if target == "first" or net.is_cnn:
        first = _memoized(net.first_pass, memo)
        return of_readout(of_logits, first), _predict_from(memo, net.first_pass)
    if target == "e2e":
        return of_readout(of_logits, _memoized(scored, memo)), _predict_from(memo, scored)
    if target == "e2e-sum":
        def passes(x: Tensor) -> Sequence[Tensor]:
            out = net.forward_passes(x)
            memo.put(x, net.readout_logits(out, readout))
            return out
        return summed_over_passes(of_logits, passes), _predict_from(memo, scored)

    def bpda_logits(x: Tensor) -> Tensor:
        value, surrogate = bpda_surrogate(net, x, readout)
        memo.put(x, value)
        return straight_through(lambda _: value, lambda _: surrogate)(x)

    return of_readout(of_logits, bpda_logits), _predict_from(memo, scored)
