"""Batch summaries of the diagnostic records and their markdown table.

Per (variant, condition): the fraction of steps at which the log joint decreased (0 expected for
the exact and guarded engines, dgm-math §4.3/§4.5; reported for CNN-F's heuristics), split by
step kind (h, z/t blocks, y); cycles to a fixed point; accuracy of the first and last pass; how
often the prediction flips and whether flips go toward the true label; how often the classes of
normalisations G (gated logits) and B (corrected logits) disagree. ``format_log_joint``: the
test log joint per dimension and its terms, one column per engine variant.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ._records import RunRecord, StepRecord


def step_kind(name: str) -> str:
    """"init", "h", "y", or "z/t" (a layer's switch/pool block)."""
    return name if name in ("init", "h", "y") else "z/t"


def summarize(steps: Sequence[StepRecord], runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One summary dict per (variant, condition), in order of first appearance.

    Keys: ``variant``, ``condition``, ``images``, ``steps`` (transitions, step > 0),
    ``decreased_frac``, ``decreased_by_kind`` (kind → fraction of that kind's steps),
    ``images_with_decrease_frac``, ``max_decrease``, ``last_cycle_units_median`` (z/t entries
    changed in each image's last cycle, median), ``fixed_point_frac`` (images whose run
    reached a fixed point), ``fixed_point_median``/``fixed_point_mean`` (cycles, over those),
    ``accuracy_by_pass`` (list), ``acc_first``, ``acc_last``, ``flip_frac``, ``flip_toward_frac``
    (wrong → right), ``flip_away_frac`` (right → wrong), ``flip_other_frac`` (wrong → other
    wrong), ``gb_disagree_init``/``gb_disagree_final``, ``delta_log_joint_median``.
    """
    keys: list[tuple[str, str]] = []
    for r in runs:
        if (r.variant, r.condition) not in keys:
            keys.append((r.variant, r.condition))
    out = []
    for variant, condition in keys:
        st = [s for s in steps if s.variant == variant and s.condition == condition and s.step > 0]
        rn = [r for r in runs if r.variant == variant and r.condition == condition]
        out.append({"variant": variant, "condition": condition, **_step_stats(st),
                    **_run_stats(rn)})
    return out


def _step_stats(st: Sequence[StepRecord]) -> dict[str, Any]:
    kinds: dict[str, list[bool]] = {}
    for s in st:
        kinds.setdefault(step_kind(s.name), []).append(s.decreased)
    dec_images = {s.image for s in st if s.decreased}
    images = {s.image for s in st}
    last_cycle: dict[int, int] = {}
    last_units: dict[int, int] = {}
    for s in st:
        if s.cycle > last_cycle.get(s.image, -1):
            last_cycle[s.image], last_units[s.image] = s.cycle, 0
        if s.cycle == last_cycle[s.image]:
            last_units[s.image] += s.units_changed
    return {
        "steps": len(st),
        "decreased_frac": _mean([s.decreased for s in st]),
        "decreased_by_kind": {k: _mean(v) for k, v in kinds.items()},
        "images_with_decrease_frac": len(dec_images) / max(len(images), 1),
        "max_decrease": max((s.decrease for s in st if s.decreased), default=0.0),
        "last_cycle_units_median": float(np.median(list(last_units.values())))
        if last_units else 0.0,
    }


def _run_stats(rn: Sequence[RunRecord]) -> dict[str, Any]:
    labels = np.array([r.label for r in rn])
    passes = max(len(r.preds) for r in rn)
    # runs that stopped early sit at a fixed point: carry the last prediction forward
    preds = np.array([r.preds + r.preds[-1:] * (passes - len(r.preds)) for r in rn])
    first, last = preds[:, 0], preds[:, -1]
    right0, right1 = first == labels, last == labels
    flipped = first != last
    reached = [r.fixed_point for r in rn if r.fixed_point is not None]
    return {
        "images": len(rn),
        "fixed_point_frac": len(reached) / len(rn),
        "fixed_point_median": float(np.median(reached)) if reached else None,
        "fixed_point_mean": float(np.mean(reached)) if reached else None,
        "accuracy_by_pass": [float(v) for v in (preds == labels[:, None]).mean(0)],
        "acc_first": float(right0.mean()),
        "acc_last": float(right1.mean()),
        "flip_frac": float(flipped.mean()),
        "flip_toward_frac": float((~right0 & right1).mean()),
        "flip_away_frac": float((right0 & ~right1).mean()),
        "flip_other_frac": float((flipped & ~right0 & ~right1).mean()),
        "gb_disagree_init": _mean([r.pred_g_init != r.pred_b_init for r in rn]),
        "gb_disagree_final": _mean([r.pred_g_final != r.pred_b_final for r in rn]),
        "delta_log_joint_median": float(np.median([r.log_joint_final - r.log_joint_init
                                                   for r in rn])),
    }


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else 0.0


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a markdown table (one row per variant × condition)."""
    head = ("| variant | condition | images | steps | log-joint decreases (h / z,t / y) "
            "| images with a decrease | fixed point reached (median cycles) "
            "| z/t changed in last cycle (median) "
            "| acc. pass 0 → last | flips (→ true / → away / other) | G ≠ B (init → final) "
            "| median Δ log p |")
    lines = [head, "|" + " --- |" * 12]
    for r in rows:
        k = r["decreased_by_kind"]
        kinds = " / ".join(_pct(k.get(name)) if name in k else "–" for name in ("h", "z/t", "y"))
        fp = _pct(r["fixed_point_frac"]) + (
            f" ({r['fixed_point_median']:g})" if r["fixed_point_median"] is not None else "")
        lines.append(
            f"| {r['variant']} | {r['condition']} | {r['images']} | {r['steps']} "
            f"| {_pct(r['decreased_frac'])} ({kinds}) | {_pct(r['images_with_decrease_frac'])} "
            f"| {fp} | {r['last_cycle_units_median']:g} "
            f"| {_pct(r['acc_first'])} → {_pct(r['acc_last'])} "
            f"| {_pct(r['flip_frac'])} ({_pct(r['flip_toward_frac'])} / "
            f"{_pct(r['flip_away_frac'])} / {_pct(r['flip_other_frac'])}) "
            f"| {_pct(r['gb_disagree_init'])} → {_pct(r['gb_disagree_final'])} "
            f"| {r['delta_log_joint_median']:.4g} |")
    return "\n".join(lines) + "\n"


def format_log_joint(table: Mapping[str, Mapping[str, float]], *, cycles: int, tau2: float,
                     images: int) -> str:
    """The test log joint per dimension as a markdown table: one row per term (``total``
    first), one column per engine variant; ``table``: variant → term → nats per dimension
    (``zoo.evaluation.generative.log_joint_per_dim``)."""
    variants = list(table)
    terms = list(dict.fromkeys(t for v in variants for t in table[v]))
    lines = [f"Test log joint per dimension, log p_B(x̃, h, y, z, t) / D and its terms (nats; "
             f"dgm-math §1.5), mean over {images} clean images at the engine's state after "
             f"{cycles} cycle(s) with y = the label, τ² = {tau2:g}"
             + (" (h = x̃)" if math.isinf(tau2) else "") + ":", "",
             "| term | " + " | ".join(variants) + " |", "|" + " --- |" * (len(variants) + 1)]
    for term in terms:
        lines.append(f"| {term} | " + " | ".join(
            f"{table[v][term]:.4f}" if term in table[v] else "–" for v in variants) + " |")
    return "\n".join(lines) + "\n"
