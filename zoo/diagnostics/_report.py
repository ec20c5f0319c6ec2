"""Writing a diagnosis to an output folder: JSON lines, a markdown summary and PNG figures.

Files: ``steps.jsonl`` (one ``StepRecord`` per line), ``runs.jsonl`` (one ``RunRecord`` per
line), ``summary.json`` (the summary rows, the resolved configuration and, when measured, the
test log joint per dimension per term), ``summary.md`` (the markdown tables, configuration and
figure list) and ``figures/*.png``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from zoo import plotting
from zoo.jsonl import write_jsonl

from ._diagnose import Diagnosis
from ._plots import (plot_accuracy, plot_log_joint, plot_repair, plot_templates, plot_terms,
                     plot_units)
from ._summary import format_log_joint, format_summary

NOTES = """\
Notes: the log joint is log p_G(x̃, h, y, z, t) + log Z_G (dgm-math §1.5; log Z_G is a
parameter-only constant), evaluated after every single step. A step "decreases" when the new
value is below the previous one by more than rtol·(1 + Σ|terms|) (rtol 1e-10 in float64, 1e-4 in
float32, §4.6). Flips compare pass 0 (plain CNN) with the last pass. G ≠ B: arg-max of the gated
logits vs model B's corrected logits at the same state (§2.2). "pgd": L∞ PGD on the first
(plain CNN) pass.
"""


def write_report(diagnosis: Diagnosis, out: str | os.PathLike, *, model, params, x, labels,
                 meta: Mapping[str, Any] | None = None,
                 class_names: Sequence[str] | None = None,
                 log_joint: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write records, summary and figures of ``diagnosis`` into ``out`` (created).

    Args:
        model, params, x, labels: the DGM and data of the run (for the class-template figure).
        meta: extra facts echoed into summary.json / summary.md (model name, command, seconds).
        log_joint: the test log joint per dimension, ``{"cycles", "tau2", "images",
            "per_dim": {variant: {term: nats}}}`` (``summary.json`` key ``log_joint``, a
            table in ``summary.md``); None: not measured.
    Returns:
        name → path of every file written.
    """
    out = Path(out)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    paths = {"steps": out / "steps.jsonl", "runs": out / "runs.jsonl",
             "summary_json": out / "summary.json", "summary_md": out / "summary.md",
             "log_joint": figs / "log_joint.png", "terms": figs / "terms.png",
             "units": figs / "units_changed.png", "accuracy": figs / "accuracy.png",
             "templates": figs / "templates.png"}
    write_jsonl(paths["steps"], diagnosis.steps)
    write_jsonl(paths["runs"], diagnosis.runs)
    if plotting.available():
        plot_log_joint(diagnosis.steps, paths["log_joint"])
        plot_terms(diagnosis.steps, paths["terms"])
        plot_units(diagnosis.steps, paths["units"])
        plot_accuracy(diagnosis.summary, paths["accuracy"])
        for (variant, condition), example in diagnosis.examples.items():
            key = f"repair_{variant}_{condition}"
            paths[key] = figs / f"{key}.png"
            plot_repair(example, f"{variant} / {condition}: input, x̃, g0 per cycle, final h "
                                 f"(left: label, prediction per pass)", paths[key])
        template_note = plot_templates(model, params, x, labels, paths["templates"],
                                       class_names)
    else:
        paths = {k: p for k, p in paths.items() if p.parent != figs}
        template_note = plotting.MISSING
    facts = {**(meta or {}), **diagnosis.config, "seconds": round(diagnosis.seconds, 1),
             "cpu_seconds": round(diagnosis.cpu_seconds, 1),
             "templates": template_note}
    report = {"config": facts, "summary": diagnosis.summary}
    md = ["# Likelihood diagnostics", "", format_summary(diagnosis.summary), NOTES]
    if log_joint is not None:
        report["log_joint"] = dict(log_joint)
        md += ["## Test log joint per dimension", "",
               format_log_joint(log_joint["per_dim"], cycles=log_joint["cycles"],
                                tau2=log_joint["tau2"], images=log_joint["images"])]
    paths["summary_json"].write_text(json.dumps(report, indent=2, default=str))
    md += ["## Configuration", ""]
    md += [f"- {k}: {v}" for k, v in facts.items()]
    md += ["", "## Figures", ""]
    md += [f"![{name}](figures/{p.name})" for name, p in paths.items() if p.parent == figs]
    paths["summary_md"].write_text("\n".join(md) + "\n")
    return paths
