"""Robustness evaluation of CNN / CNN-F models: attack targets, accuracy vs ε with the per-image
worst case, paired tests, accuracy over feedback iterations, repair strips, gradient-masking
checks, and the JSONL / markdown / PNG outputs (``dgm eval``, ``dgm demo``); natural
corruptions (``natural``: ``dgm eval --corruptions``).

Example:
    >>> from zoo.evaluation import EvalConfig, run_evaluation
    >>> models = {"CNN": cnn, "CNN-F": cnnf}
    >>> run_evaluation(models, x, y, EvalConfig(transfer_from="CNN"), "out/eval")
"""
from .masking import CheckConfig, run_checks
from .natural import NaturalConfig, run_natural
from .pipeline import run_evaluation
from .repair import Repair, repair
from .report import markdown, records, worst_cases
from .runner import ATTACKS, Cell, EvalConfig, Evaluation, attack_inputs, evaluate, fixed_subset
from .targets import TARGETS, bpda_surrogate, build_target

__all__ = [
    "ATTACKS", "TARGETS", "Cell", "CheckConfig", "EvalConfig", "Evaluation", "NaturalConfig",
    "Repair", "attack_inputs", "bpda_surrogate", "build_target", "evaluate", "fixed_subset",
    "markdown", "records", "repair", "run_checks", "run_evaluation", "run_natural",
    "worst_cases",
]
