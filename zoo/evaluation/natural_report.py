"""Summaries and the markdown report of a natural-corruption evaluation (``natural``).

Per model: clean accuracy, mean corruption accuracy (mean over the corruption × severity
cells), corruption error relative to the CNN baseline (Hendrycks & Dietterich 2019:
CE_c = Σ_s E_{s,c} / Σ_s E^{CNN}_{s,c}, mCE = mean over c), accuracy per severity. Per CNN-F
model and corruption (pooled over severities; each image counts once per severity): the seed's
claim — accuracy at pass 0 vs the last pass (paired difference with a 95 % Wald interval for
paired proportions, exact McNemar p) and the repair (the last rendering's relative L2 to f(clean)
against the corrupted input's, mean difference with a 95 % normal interval; the share of images
whose rendering is closer).
"""
from __future__ import annotations

import math
from typing import Sequence

from zoo.attacks import mcnemar_p

CLEAN = "clean"
"""The corruption name of the uncorrupted images (severity 0)."""

Z = 1.96


def _cells(recs: Sequence[dict]) -> list[dict]:
    return [d for d in recs if d["kind"] == "cell"]


def baseline(recs: Sequence[dict]) -> str | None:
    """The mCE baseline: the first model with 0 cycles."""
    models = next(d for d in recs if d["kind"] == "config")["models"]
    return next((m for m, v in models.items() if v["cycles"] == 0), None)


def _pooled(stats: Sequence[dict]) -> tuple[float, float, float]:
    """Mean and 95 % interval of the union of groups given as {mean, sd, n}."""
    n = sum(s["n"] for s in stats)
    mean = sum(s["mean"] * s["n"] for s in stats) / n
    ss = sum((s["n"] - 1) * s["sd"] ** 2 + s["n"] * (s["mean"] - mean) ** 2 for s in stats)
    half = Z * math.sqrt(ss / max(n - 1, 1) / n)
    return mean, mean - half, mean + half


def paired_difference(b01: int, b10: int, n: int) -> tuple[float, float, float]:
    """(p_last − p_first) and its 95 % Wald interval for paired proportions:
    Δ = (b01 − b10)/n, se = √(b01 + b10 − (b01 − b10)²/n) / n."""
    d = (b01 - b10) / n
    se = math.sqrt(max(b01 + b10 - (b01 - b10) ** 2 / n, 0.0)) / n
    return d, d - Z * se, d + Z * se


def summaries(recs: Sequence[dict]) -> list[dict]:
    """``model`` summaries and, for models with feedback, ``claim`` rows per corruption."""
    cells = _cells(recs)
    base = baseline(recs)
    out = []
    models = list(dict.fromkeys(d["model"] for d in cells))
    for m in models:
        mine = [d for d in cells if d["model"] == m and d["corruption"] != CLEAN]
        clean = next(d for d in cells if d["model"] == m and d["corruption"] == CLEAN)
        corr = list(dict.fromkeys(d["corruption"] for d in mine))
        sev = sorted({d["severity"] for d in mine})
        rec = dict(kind="model", model=m, clean=clean["acc"],
                   mean_corruption_acc=sum(d["acc"] for d in mine) / max(len(mine), 1),
                   per_severity={str(s): sum(d["acc"] for d in mine if d["severity"] == s)
                                 / len(corr) for s in sev},
                   per_corruption={c: sum(d["acc"] for d in mine if d["corruption"] == c)
                                   / len(sev) for c in corr})
        if len(clean["pass_acc"]) > 1:
            rec["mean_corruption_acc_pass0"] = sum(d["pass_acc"][0] for d in mine) / len(mine)
        if base is not None:
            ce = {}
            for c in corr:
                err = sum(1 - d["acc"] for d in mine if d["corruption"] == c)
                ref = sum(1 - d["acc"] for d in cells if d["model"] == base
                          and d["corruption"] == c)
                ce[c] = err / ref if ref > 0 else float("nan")
            rec.update(baseline=base, ce=ce, mce=sum(ce.values()) / len(ce))
        out.append(rec)
    for m in models:
        for c in dict.fromkeys(d["corruption"] for d in cells if d["model"] == m):
            group = [d for d in cells if d["model"] == m and d["corruption"] == c]
            if len(group[0]["pass_acc"]) < 2:
                continue
            n = sum(d["n"] for d in group)
            b01 = sum(d["pass0_vs_last"]["b01"] for d in group)
            b10 = sum(d["pass0_vs_last"]["b10"] for d in group)
            d_acc, lo, hi = paired_difference(b01, b10, n)
            w = lambda key: sum(d["repair"][key] * d["n"] for d in group) / n
            wl = lambda key: sum(d["repair"][key][-1] * d["n"] for d in group) / n
            rel, rel_lo, rel_hi = _pooled([d["repair"]["delta_rel_l2"] for d in group])
            rec = dict(kind="claim", model=m, corruption=c, n=n,
                       severities=[d["severity"] for d in group],
                       acc_pass0=sum(d["pass_acc"][0] * d["n"] for d in group) / n,
                       acc_last=sum(d["pass_acc"][-1] * d["n"] for d in group) / n,
                       delta_acc=d_acc, delta_acc_lo=lo, delta_acc_hi=hi, b01=b01, b10=b10,
                       p_value=mcnemar_p(b01, b10),
                       rel_l2_input=w("rel_l2_input"), rel_l2_render=wl("rel_l2_render"),
                       delta_rel_l2=rel, delta_rel_l2_lo=rel_lo, delta_rel_l2_hi=rel_hi,
                       cos_input=w("cos_input"), cos_render=wl("cos_render"),
                       closer=w("closer"))
            if "fixed_point" in group[0]:
                rec["converged"] = sum(d["fixed_point"]["converged"] * d["n"]
                                       for d in group) / n
                rec["cycles_mean"] = sum(d["fixed_point"]["cycles_mean"] * d["n"]
                                         for d in group) / n
            out.append(rec)
    return out


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def markdown(recs: Sequence[dict]) -> str:
    """The report: setup line, accuracy tables, mCE, the seed's claim per corruption."""
    cfg = next(d for d in recs if d["kind"] == "config")
    cells = _cells(recs)
    models = [d for d in recs if d["kind"] == "model"]
    claims = [d for d in recs if d["kind"] == "claim"]
    timing = next((d for d in recs if d["kind"] == "timing"), None)
    c = cfg["config"]
    mode = (f"fixed point (cap {c['max_cycles']} cycles)" if c["fixed_point"]
            else "each model's own cycles")
    lines = [f"# Natural corruptions ({cfg.get('dataset', '')})", "",
             f"{cfg['n']} test images (seeded subset, seed {cfg.get('subset_seed', '-')}); "
             f"corruption seed {c['seed']}; severities {', '.join(map(str, c['severities']))}; "
             f"inference: {mode}. Accuracy in % of the scored readout (last pass unless a "
             f"model reads out the average); `pass 0` = the CNN-F's own feedforward pass."
             + (f" {timing['images_per_s']:.0f} images/s ({timing['threads']} threads, "
                f"{timing['seconds']:.0f} s)." if timing else ""), ""]
    base = models[0].get("baseline") if models else None
    lines += ["## Summary", "", "| model | clean | mean corruption acc | pass 0 | mCE vs "
              f"{base or '-'} (%) | " + " | ".join(f"s{s}" for s in c["severities"]) + " |",
              "|---|---|---|---|---|" + "---|" * len(c["severities"])]
    for d in models:
        lines.append(f"| {d['model']} | {_pct(d['clean'])} | {_pct(d['mean_corruption_acc'])} | "
                     + (_pct(d["mean_corruption_acc_pass0"]) if "mean_corruption_acc_pass0" in d
                        else "-") + " | "
                     + (f"{100 * d['mce']:.1f}" if "mce" in d else "-") + " | "
                     + " | ".join(_pct(d["per_severity"][str(s)]) for s in c["severities"]) + " |")
    names = [m["model"] for m in models]
    lines += ["", "## Accuracy per corruption (mean over severities; CE vs the baseline in "
              "parentheses)", "", "| family | corruption | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]
    for corr in dict.fromkeys(d["corruption"] for d in cells if d["corruption"] != CLEAN):
        fam = next(d["family"] for d in cells if d["corruption"] == corr)
        row = []
        for d in models:
            ce = d.get("ce", {}).get(corr)
            row.append(_pct(d["per_corruption"][corr])
                       + (f" ({100 * ce:.0f})" if ce is not None and d["model"] != base else ""))
        lines.append(f"| {fam} | {corr} | " + " | ".join(row) + " |")
    for m in dict.fromkeys(d["model"] for d in claims):
        rows = [d for d in claims if d["model"] == m]
        fp = "converged" in rows[0]
        lines += ["", f"## Does the feedback repair? ({m}, pooled over severities)", "",
                  "Accuracy at pass 0 and at the last pass, paired difference [95 % CI] and "
                  "exact McNemar p; relative L2 distance to f(clean) at the feedback level of "
                  "the corrupted input and of the last rendering, their mean difference "
                  "(input − rendering: > 0 means the rendering is closer) [95 % CI], the share "
                  "of images whose rendering is closer, and the cosines.", "",
                  "| corruption | pass 0 | last | Δ acc (points) | p | rel L2 input | rel L2 "
                  "rendering | Δ rel L2 | closer | cos input | cos rendering |"
                  + (" converged | cycles |" if fp else ""),
                  "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if fp else "")]
        for d in rows:
            lines.append(
                f"| {d['corruption']} | {_pct(d['acc_pass0'])} | {_pct(d['acc_last'])} | "
                f"{100 * d['delta_acc']:+.1f} [{100 * d['delta_acc_lo']:+.1f}, "
                f"{100 * d['delta_acc_hi']:+.1f}] | {d['p_value']:.2g} | "
                f"{d['rel_l2_input']:.3f} | {d['rel_l2_render']:.3f} | "
                f"{d['delta_rel_l2']:+.3f} [{d['delta_rel_l2_lo']:+.3f}, "
                f"{d['delta_rel_l2_hi']:+.3f}] | {_pct(d['closer'])} % | "
                f"{d['cos_input']:.3f} | {d['cos_render']:.3f} |"
                + (f" {_pct(d['converged'])} % | {d['cycles_mean']:.1f} |" if fp else ""))
    pixel = [d for d in cells if "psnr_input" in d.get("repair", {})]
    if pixel:
        lines += ["", "## Pixel space (ind = 0): PSNR / SSIM of the input and the last "
                  "rendering vs the clean image", "",
                  "| model | corruption | severity | PSNR input | PSNR rendering | SSIM input | "
                  "SSIM rendering |", "|---|---|---|---|---|---|---|"]
        for d in pixel:
            r = d["repair"]
            lines.append(f"| {d['model']} | {d['corruption']} | {d['severity']} | "
                         f"{r['psnr_input']:.2f} | {r['psnr_render'][-1]:.2f} | "
                         f"{r['ssim_input']:.3f} | {r['ssim_render'][-1]:.3f} |")
    return "\n".join(lines) + "\n"
