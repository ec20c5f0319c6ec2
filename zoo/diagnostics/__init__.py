"""Likelihood diagnostics: what alternating-MAP inference does to the log joint, step by step and
layer by layer, on real (clean and PGD-perturbed) images — records, summaries, figures (issue 6).

Example:
    >>> from zoo.diagnostics import diagnose, format_summary, with_noise, write_report
    >>> model = with_noise(net.dgm, tau2=net.dgm.sigma2 / 9)
    >>> params = {k: v.detach().double() for k, v in net.params().items()}
    >>> d = diagnose(model, params, x.double(), y, variants=("exact", "original"))
    >>> print(format_summary(d.summary))
    >>> write_report(d, "out/diagnose", model=model, params=params, x=x.double(), labels=y)

The same from the command line: ``dgm diagnose fashion_cnnf --n-images 256 --out DIR``.
"""
from ._diagnose import (CONDITIONS, VARIANTS, Diagnosis, Example, attack_first_pass, diagnose,
                        with_noise)
from ._records import (RunRecord, StepRecord, Trace, changed_units, fixed_point_cycle, gb_classes,
                       run_records, step_records, tolerance, trace)
from ._report import write_report
from ._summary import format_log_joint, format_summary, summarize

__all__ = ["CONDITIONS", "VARIANTS", "Diagnosis", "Example", "RunRecord", "StepRecord", "Trace",
           "attack_first_pass", "changed_units", "diagnose", "fixed_point_cycle",
           "format_log_joint", "format_summary", "gb_classes", "run_records", "step_records",
           "summarize", "tolerance", "trace", "with_noise", "write_report"]
