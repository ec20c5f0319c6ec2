"""Adversarial attacks and robustness statistics for evaluating (CNN-F / DGM) classifiers.

Attacks take plain callables on tensors, never models:

* ``loss_fn(x (N, ...), y (N,)) -> (N,)``: per-example loss to maximise
  (:func:`ce_loss`, :func:`ce_sum_loss` for "e2e-sum", :func:`margin_loss`,
  :func:`dlr_loss` / :func:`dlr_sum_loss`, which keep their gradient when the softmax saturates);
* ``predict(x) -> (N, K)``: logits of the scored readout.

Inputs live in ``[-1, 1]`` by default (``clip=(-1.0, 1.0)``) and budgets are in input
units; the paper's budgets are in ``[0, 1]`` pixel units -- convert with
:func:`pixel_to_input` (``x 2`` for ``[-1, 1]``).
"""

from .apgd import apgd
from .bpda import straight_through
from .checks import (
    CheckResult,
    accuracy_vanishes,
    attack_saturated,
    blackbox_not_stronger,
    format_report,
    gradients_not_vanishing,
    more_steps_never_help,
    repeatable,
    whitebox_not_weaker,
)
from .common import AttackResult, pixel_to_input, project_linf
from .losses import (ce_loss, ce_sum_loss, cross_entropy, dlr, dlr_loss, dlr_sum_loss, margin,
                     margin_loss, of_readout, summed_over_passes)
from .pgd import pgd
from .spsa import spsa, spsa_gradient
from .stats import accuracy_with_interval, mcnemar_exact, mcnemar_p, wilson_interval
from .transfer import transfer
from .worst_case import WorstCaseSummary, broken_by, summarize_worst_case, worst_case

__all__ = [
    "AttackResult",
    "pixel_to_input",
    "project_linf",
    "pgd",
    "apgd",
    "spsa",
    "spsa_gradient",
    "straight_through",
    "transfer",
    "ce_loss",
    "cross_entropy",
    "ce_sum_loss",
    "of_readout",
    "summed_over_passes",
    "dlr",
    "dlr_loss",
    "dlr_sum_loss",
    "margin",
    "margin_loss",
    "worst_case",
    "broken_by",
    "WorstCaseSummary",
    "summarize_worst_case",
    "wilson_interval",
    "mcnemar_exact",
    "mcnemar_p",
    "accuracy_with_interval",
    "CheckResult",
    "accuracy_vanishes",
    "more_steps_never_help",
    "blackbox_not_stronger",
    "whitebox_not_weaker",
    "gradients_not_vanishing",
    "attack_saturated",
    "repeatable",
    "format_report",
]
