"""Figures of a natural-corruption evaluation (matplotlib, Agg, via ``zoo.plotting``): accuracy vs
severity per corruption, accuracy over feedback iterations per family, and the repair strips."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from zoo.corruptions import FAMILIES

from zoo.plotting import pyplot

from .figures import repair_strip
from .natural_report import CLEAN
from .repair import Repair


def accuracy_vs_severity(recs: Sequence[dict], path: Path) -> None:
    """One panel per corruption: accuracy (scored readout; pass 0 dashed for CNN-F models)
    against severity, severity 0 = clean."""
    plt = pyplot()
    cells = [d for d in recs if d["kind"] == "cell"]
    corrs = list(dict.fromkeys(d["corruption"] for d in cells if d["corruption"] != CLEAN))
    models = list(dict.fromkeys(d["model"] for d in cells))
    cols = min(5, len(corrs))
    rows = -(-len(corrs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols, 2.5 * rows), squeeze=False,
                             constrained_layout=True, sharey=True)
    for ax, corr in zip(axes.flat, corrs):
        for i, m in enumerate(models):
            pts = sorted((d["severity"], d["acc"], d["pass_acc"][0]) for d in cells
                         if d["model"] == m and d["corruption"] in (corr, CLEAN))
            s, acc, first = zip(*pts)
            line, = ax.plot(s, [100 * a for a in acc], marker="o", ms=3, label=m)
            if any(len(d["pass_acc"]) > 1 for d in cells if d["model"] == m):
                ax.plot(s, [100 * a for a in first], ls="--", color=line.get_color(),
                        label=f"{m} pass 0")
        ax.set(title=corr, xlabel="severity", ylim=(0, 100))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(corrs):]:
        ax.axis("off")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend(fontsize=6)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def accuracy_over_iterations(recs: Sequence[dict], path: Path) -> bool:
    """Rows: models with feedback; columns: families; lines: severities (mean over the
    family's corruptions) and clean. False (nothing written) when no model has feedback."""
    plt = pyplot()
    cells = [d for d in recs if d["kind"] == "cell" and len(d["pass_acc"]) > 1]
    models = list(dict.fromkeys(d["model"] for d in cells))
    if not models:
        return False
    fams = [f for f, names in FAMILIES.items() if any(d["corruption"] in names for d in cells)]
    fig, axes = plt.subplots(len(models), len(fams), figsize=(3.3 * len(fams),
                             2.8 * len(models)), squeeze=False, constrained_layout=True,
                             sharey=True)
    for r, m in enumerate(models):
        clean = next(d for d in cells if d["model"] == m and d["corruption"] == CLEAN)
        for ax, fam in zip(axes[r], fams):
            ax.plot([100 * a for a in clean["pass_acc"]], color="k", label="clean")
            for s in sorted({d["severity"] for d in cells if d["family"] == fam}):
                group = [d["pass_acc"] for d in cells if d["model"] == m
                         and d["family"] == fam and d["severity"] == s]
                width = max(len(p) for p in group)  # (fixed point: pad with the fixed point)
                group = [p + p[-1:] * (width - len(p)) for p in group]
                mean = [100 * sum(p[i] for p in group) / len(group) for i in range(width)]
                ax.plot(mean, marker=".", label=f"s{s}")
            ax.set(title=f"{m}: {fam}", xlabel="pass (0 = feedforward)", ylim=(0, 100))
            ax.grid(alpha=0.3)
        axes[r][0].set_ylabel("accuracy (%)")
    axes[0][0].legend(fontsize=6)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_all(recs: Sequence[dict], strips: Mapping[tuple, Repair], out: Path) -> list[Path]:
    """Every figure into ``out``; returns the paths written."""
    paths = [out / "accuracy_vs_severity.png"]
    accuracy_vs_severity(recs, paths[0])
    if accuracy_over_iterations(recs, out / "accuracy_over_iterations.png"):
        paths.append(out / "accuracy_over_iterations.png")
    for (m, corr, s), rep in strips.items():
        p = out / f"repair_{m}_{corr}_s{s}.png".replace(" ", "_").replace("/", "_")
        repair_strip(rep, f"{m}: {corr}, severity {s}; cos = cosine similarity to f(clean) at "
                          f"the feedback level", p)
        paths.append(p)
    return paths
