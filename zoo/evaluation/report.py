"""Turn an ``Evaluation`` into records (JSONL) and a markdown report.

Reported per (model, readout) row and ε: the accuracy of every attack and of the per-image
worst case over all attacks run (the ``min`` column), each with its Wilson 95 % interval (an
image counts as robust only if it is also correct clean); a cell that ran as a cascade holds the
worst case so far, and its record says so (``value: "worst_case_so_far"`` and the attacks it is
the worst case ``over``; per-attack cells have ``value: "attack"``); the
exact McNemar test of every CNN-F row against the CNN on the ``min`` column (same images);
the feedback's share of the robustness (the CNN-F's own first pass under the "first" attack vs
the full model's worst case); accuracy over feedback iterations under the "first" and "e2e"
attacks; the gradient-masking checks; the repair similarities.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from zoo.attacks import (CheckResult, accuracy_with_interval, format_report, mcnemar_exact,
                         pixel_to_input, summarize_worst_case)

from .repair import Repair
from .runner import STRONG, Evaluation

MIN = "min"
PGD_TARGETS = ("first", "e2e", "e2e-sum")  # the worst case of the issue-4 robustness target
ALL = "all"


def worst_cases(ev: Evaluation, over: Sequence[str] | None = None
                ) -> dict[tuple[str, str, float], object]:
    """(model, readout, ε) -> ``WorstCaseSummary`` over the attacks ``over`` (default: every
    attack) of that row and ε; at ε = 0 the clean cell."""
    out = {}
    for m, r in ev.rows():
        for e in ev.config.eps:
            cols = {a: c.correct for (mm, rr, a, ee), c in ev.cells.items()
                    if (mm, rr, ee) == (m, r, e) and (over is None or a in over or e == 0)}
            if cols:
                out[(m, r, e)] = summarize_worst_case(cols)
    return out


def _worst_case_sets(ev: Evaluation) -> dict[str, dict]:
    """"all" attacks, and the PGD targets alone when that is a different, non-empty set."""
    sets = {ALL: worst_cases(ev)}
    ran = {a for *_, a, e in ev.cells if e > 0}
    if ran & set(PGD_TARGETS) and ran - set(PGD_TARGETS):
        sets[",".join(PGD_TARGETS)] = worst_cases(ev, PGD_TARGETS)
    return sets


def baseline_row(ev: Evaluation, cycles: Mapping[str, int]) -> tuple[str, str] | None:
    """The CNN row (a model with no cycles), if any."""
    return next(((m, r) for m, r in ev.rows() if cycles[m] == 0), None)


def records(ev: Evaluation, cycles: Mapping[str, int],
            checks: Mapping[tuple[str, str], Sequence[CheckResult]],
            repairs: Mapping[tuple[str, str, str, float], Repair]) -> list[dict]:
    """One JSON-able dict per cell, worst case, paired test, check and repair."""
    cfg, out = ev.config, []
    for (m, r, a, e), c in ev.cells.items():
        steps = 0 if a in ("clean", "transfer") else cfg.apgd_steps if a in STRONG else cfg.steps
        restarts = 0 if not steps else cfg.apgd_restarts if a in STRONG else cfg.restarts
        step = "2·eps, halved by APGD" if a in STRONG else cfg.step_size(e) if steps and e else 0.0
        out.append(dict(kind="cell", model=m, readout=r, attack=a,
                        value="worst_case_so_far" if c.cascade else "attack",
                        over=list(c.cascade or (a,)),
                        attacked=_attacked(a, r, cycles[m], cfg.transfer_from), eps=e,
                        eps_input=pixel_to_input(e), steps=steps, step_size_input=step,
                        restarts=restarts, seed=cfg.seed,
                        pass_acc=[float(p.float().mean()) for p in c.pass_correct],
                        n_attacked=len(c.correct) if c.attacked is None else int(c.attacked.sum()),
                        cascade=bool(c.cascade),
                        seconds=round(c.seconds, 2), **accuracy_with_interval(c.correct)))
    base = baseline_row(ev, cycles)
    for over, wc in _worst_case_sets(ev).items():
        for (m, r, e), s in wc.items():
            out.append(dict(kind="worst_case", over=over, model=m, readout=r, eps=e,
                            attacks=list(s.n_broken), n_broken=s.n_broken,
                            n_only_broken=s.n_only_broken, **accuracy_with_interval(s.robust)))
        if base is None:
            continue
        for m, r in ev.rows():
            if (m, r) == base:
                continue
            for e in cfg.eps:
                test = mcnemar_exact(wc[base + (e,)].robust, wc[(m, r, e)].robust)
                out.append(dict(kind="paired_test", over=over, a=list(base), b=[m, r], eps=e,
                                column=MIN, **test))
    for (m, r), results in checks.items():
        out += [dict(kind="check", model=m, readout=r, name=c.name, passed=c.passed,
                     detail=c.detail) for c in results]
    for (m, r, a, e), rep in repairs.items():
        out.append(dict(kind="repair", model=m, readout=r, attack=a, eps=e,
                        level0_channels=rep.level0_channels,
                        cos_perturbed=float(rep.cos_perturbed.mean()),
                        cos_renderings=[float(c.mean()) for c in rep.cos_renderings]))
    return out


def _attacked(attack: str, readout: str, cycles: int, source: str | None) -> str:
    """Which function the attack differentiated (kept apart from the scored readout)."""
    if attack == "clean":
        return "-"
    if attack == "transfer":
        return f"{source} (transfer)"
    if attack == "first" or cycles == 0:
        return "pass 0"
    return {"e2e": readout, "e2e-sum": "sum of passes", "bpda": f"{readout} (BPDA)",
            "apgd-sum": "sum of passes (APGD)", "apgd-dlr": "sum of passes (APGD, DLR)"}[attack]


def _pct(acc: dict) -> str:
    return f"{100 * acc['acc']:.1f} [{100 * acc['lo']:.1f}, {100 * acc['hi']:.1f}]"


def markdown(ev: Evaluation, cycles: Mapping[str, int], recs: Sequence[dict],
             header: dict) -> str:
    """The report: config line, tables, checks and repair."""
    cfg = ev.config
    eps = list(cfg.eps)
    cells = {(d["model"], d["readout"], d["attack"], d["eps"]): d
             for d in recs if d["kind"] == "cell"}
    wcs: dict[str, dict] = {}
    for d in recs:
        if d["kind"] == "worst_case":
            wcs.setdefault(d["over"], {})[(d["model"], d["readout"], d["eps"])] = d
    wc = wcs[ALL]
    n = len(ev.labels)
    lines = [f"# Robustness evaluation ({header.get('dataset', '')})", "",
             f"{n} test images (seeded subset, seed {cfg.seed}); ε in [0, 1] pixel units "
             f"(×2 in the [-1, 1] input range): {', '.join(f'{e:g}' for e in eps)}; "
             f"PGD-{cfg.steps}, step {cfg.step_scale:g}·ε/{cfg.steps}, random start, "
             f"{cfg.restarts} restart(s)"
             + (f"; APGD-{cfg.apgd_steps} (step from 2ε, halved by APGD's rule), "
                f"{cfg.apgd_restarts} restart(s)" if set(cfg.attacks) & set(STRONG) else "")
             + f"; attacks: {', '.join(cfg.attacks)}. "
             f"Accuracy in % with Wilson 95 % intervals; an image counts as robust only if it "
             f"is also correct clean; `min` = per-image worst case over all attacks of the row."
             + (f" Cascade ({', '.join(cfg.cascade)}): run only on the images every earlier "
                f"attack of the row left correct (the `min` column is the same worst case)."
                if cfg.cascade else ""), "",
             *_warnings(recs),
             "## Worst-case (`min`) accuracy vs ε", "",
             "| model | readout | worst case over | " + " | ".join(f"ε={e:g}" for e in eps)
             + " |", "|---|---|---|" + "---|" * len(eps)]
    for over, table in wcs.items():
        for m, r in ev.rows():
            lines.append(f"| {m} | {r} | {over} | "
                         + " | ".join(_pct(table[(m, r, e)]) for e in eps) + " |")
    lines += ["", "## Every attack (accuracy %, attacked function → scored readout)", "",
              "| model | scored | attack | attacked | " + " | ".join(f"{e:g}" for e in eps)
              + " |", "|---|---|---|---|" + "---|" * len(eps)]
    for m, r in ev.rows():
        for a in [x for x in ev.attacks(m, r) if x != "clean"] + [MIN]:
            row = []
            for e in eps:
                d = wc[(m, r, e)] if a == MIN or e == 0 else cells.get((m, r, a, e))
                row.append("-" if d is None else f"{100 * d['acc']:.1f}")
            attacked = "per image worst" if a == MIN else \
                _attacked(a, r, cycles[m], cfg.transfer_from)
            if any(cells.get((m, r, a, e), {}).get("cascade") for e in eps):
                attacked += " (cascade: worst case so far)"
            lines.append(f"| {m} | {r} | {a} | {attacked} | " + " | ".join(row) + " |")
    tests = [d for d in recs if d["kind"] == "paired_test"]
    if tests:
        lines += ["", "## CNN-F vs CNN on the `min` column (exact McNemar, same images)", "",
                  "| CNN-F row | worst case over | ε | CNN % | CNN-F % | Δ (points) | "
                  "CNN-F only right | CNN only right | p |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for d in tests:
            table = wcs[d["over"]]
            a, b = table[tuple(d["a"]) + (d["eps"],)], table[tuple(d["b"]) + (d["eps"],)]
            lines.append(f"| {d['b'][0]}/{d['b'][1]} | {d['over']} | {d['eps']:g} | "
                         f"{100 * a['acc']:.1f} | "
                         f"{100 * b['acc']:.1f} | {100 * (b['acc'] - a['acc']):+.1f} | "
                         f"{d['b01']} | {d['b10']} | {d['p_value']:.3g} |")
    lines += _feedback_share(ev, cycles, cells, wc)
    lines += _iterations(ev, cycles, cells)
    checks = [d for d in recs if d["kind"] == "check"]
    if checks:
        lines += ["", "## Gradient-masking checks", ""]
        for m, r in ev.rows():
            res = [CheckResult(d["name"], d["passed"], d["detail"]) for d in checks
                   if (d["model"], d["readout"]) == (m, r)]
            if res:
                lines += [f"**{m} / {r}**", "", "```", format_report(res), "```", ""]
    for d in (d for d in recs if d["kind"] == "repair"):
        lines += ["", f"## Repair ({d['model']}/{d['readout']}, {d['attack']} attack, "
                  f"ε={d['eps']:g})", "",
                  f"Mean cosine similarity to f(clean) at level 0 ({d['level0_channels']} "
                  f"channels): perturbed {d['cos_perturbed']:.3f}; rendering after cycle "
                  + ", ".join(f"{i + 1}: {c:.3f}" for i, c in enumerate(d["cos_renderings"]))]
    return "\n".join(lines) + "\n"


def _warnings(recs: Sequence[dict]) -> list[str]:
    """A warning paragraph naming every failed check (empty when all passed)."""
    failed = [d for d in recs if d["kind"] == "check" and not d["passed"]]
    if not failed:
        return []
    return [f"**Warning: {len(failed)} gradient-masking check(s) failed** (details below): "
            + ", ".join(f"{d['model']}/{d['readout']} {d['name']}" for d in failed) + ".", ""]


def _feedback_share(ev, cycles, cells, wc) -> list[str]:
    """CNN-F's own first pass attacked alone (pass 0 under "first") vs the full model."""
    base = baseline_row(ev, cycles)
    rows = [(m, r) for m, r in ev.rows() if cycles[m] and (m, r, "first", ev.config.eps[-1])
            in cells]
    if not rows:
        return []
    lines = ["", "## Share of the robustness due to the feedback iterations", "",
             "First pass alone = CNN-F's pass-0 accuracy under the attack on pass 0; full = "
             "the `min` column. Share = (full − first pass) / (full − CNN).", "",
             "| CNN-F row | ε | CNN | first pass alone | full (min) | share |",
             "|---|---|---|---|---|---|"]
    for m, r in rows:
        for e in (e for e in ev.config.eps if e > 0):
            alone = cells[(m, r, "first", e)]["pass_acc"][0]
            full = wc[(m, r, e)]["acc"]
            cnn = wc[base + (e,)]["acc"] if base else float("nan")
            gain = full - cnn
            share = f"{(full - alone) / gain:.2f}" if base and gain > 0 else "-"
            lines.append(f"| {m}/{r} | {e:g} | {100 * cnn:.1f} | {100 * alone:.1f} | "
                         f"{100 * full:.1f} | {share} |")
    return lines


def _iterations(ev, cycles, cells) -> list[str]:
    """Accuracy of every pass 0..C on the inputs of the "first" and "e2e" attacks."""
    lines = []
    for m, r in ev.rows():
        if not cycles[m]:
            continue
        attacks = [a for a in ("first", "e2e") if a in ev.attacks(m, r)]
        if not attacks:
            continue
        passes = cycles[m] + 1
        lines += ["", f"## Accuracy over feedback iterations ({m}, attacked readout {r})", "",
                  "| attack | ε | " + " | ".join(f"pass {i}" for i in range(passes)) + " |",
                  "|---|---|" + "---|" * passes]
        for e in ev.config.eps:
            for a in (["clean"] if e == 0 else attacks):
                acc = cells[(m, r, a, e)]["pass_acc"]
                lines.append(f"| {a} | {e:g} | " + " | ".join(f"{100 * v:.1f}" for v in acc)
                             + " |")
    return lines
