"""PNG figures of an evaluation (matplotlib, Agg, imported on first use through
``zoo.plotting``): accuracy vs ε, accuracy over feedback iterations per ε, and the image-repair
strip."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from zoo.plotting import pyplot

from .repair import Repair


def accuracy_vs_eps(recs: Sequence[dict], path: Path) -> None:
    """Left: worst-case accuracy per row with Wilson intervals; right: every attack."""
    plt = pyplot()
    wc = [d for d in recs if d["kind"] == "worst_case" and d["over"] == "all"]
    cells = [d for d in recs if d["kind"] == "cell"]
    rows = list(dict.fromkeys((d["model"], d["readout"]) for d in wc))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for m, r in rows:
        pts = sorted((d["eps"], d["acc"], d["lo"], d["hi"]) for d in wc
                     if (d["model"], d["readout"]) == (m, r))
        e, a, lo, hi = (list(v) for v in zip(*pts))
        left.errorbar(e, [100 * v for v in a], yerr=[[100 * (v - w) for v, w in zip(a, lo)],
                                                     [100 * (w - v) for v, w in zip(a, hi)]],
                      marker="o", capsize=3, label=f"{m} ({r})")
        for attack in dict.fromkeys(d["attack"] for d in cells
                                    if (d["model"], d["readout"]) == (m, r)):
            if attack == "clean":
                continue
            pts = sorted((d["eps"], d["acc"]) for d in cells
                         if (d["model"], d["readout"], d["attack"]) == (m, r, attack)
                         or ((d["model"], d["readout"], d["attack"]) == (m, r, "clean")))
            right.plot(*zip(*[(x, 100 * y) for x, y in pts]), marker=".",
                       label=f"{m} ({r}) {attack}")
    for ax, title in ((left, "per-image worst case over attacks (min)"),
                      (right, "each attack")):
        ax.set(xlabel="ε (pixel units, [0, 1])", ylabel="accuracy (%)", title=title,
               ylim=(0, 100))
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.legend(fontsize=6, ncol=2)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def accuracy_over_iterations(recs: Sequence[dict], path: Path) -> bool:
    """Accuracy of pass 0..C per ε under the "first" and "e2e" attacks, per CNN-F row.
    Returns False (and writes nothing) when no row has feedback cycles."""
    plt = pyplot()
    cells = [d for d in recs if d["kind"] == "cell" and len(d["pass_acc"]) > 1]
    panels = list(dict.fromkeys((d["model"], d["readout"], d["attack"]) for d in cells
                                if d["attack"] in ("first", "e2e")))
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8),
                             constrained_layout=True, squeeze=False)
    for ax, (m, r, a) in zip(axes[0], panels):
        for d in sorted((d for d in cells if (d["model"], d["readout"]) == (m, r)
                         and d["attack"] in (a, "clean")), key=lambda d: d["eps"]):
            ax.plot(range(len(d["pass_acc"])), [100 * v for v in d["pass_acc"]], marker="o",
                    label=f"ε={d['eps']:g}")
        ax.set(xlabel="feedback iteration (0 = plain CNN pass)", ylabel="accuracy (%)",
               title=f"{m}, {a} attack on {r}", ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _pixels(img):
    """An input image (C, H, W) in [−1, 1] as imshow wants it: (H, W) gray or (H, W, 3) RGB in
    [0, 1]."""
    a = (img.detach().cpu().float().clamp(-1, 1).numpy() + 1) / 2
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def repair_strip(rep: Repair, title: str, path: Path) -> None:
    """Rows = images; columns = input, perturbed (pixels; RGB in colour), f(clean), f(perturbed),
    then the rendering g₀ of each cycle (channel means of the level-0 maps), with cos to
    f(clean)."""
    plt = pyplot()
    n, cycles = rep.clean.shape[0], rep.renderings.shape[0]
    cols = 4 + cycles
    fig, axes = plt.subplots(n, cols, figsize=(1.3 * cols, 1.4 * n + 0.8),
                             constrained_layout=True, squeeze=False)
    mean = f"mean of {rep.level0_channels} ch" if rep.level0_channels > 1 else "level 0"
    heads = ["input", "perturbed", f"f(clean)\n{mean}", f"f(perturbed)\n{mean}"] + \
        [f"g₀ cycle {c + 1}\n{mean}" for c in range(cycles)]
    for i in range(n):
        maps = [rep.clean[i], rep.perturbed[i], rep.f_clean[i], rep.f_perturbed[i]] + \
            [rep.renderings[c, i] for c in range(cycles)]
        cos = [None, None, None, rep.cos_perturbed[i]] + [rep.cos_renderings[c, i]
                                                          for c in range(cycles)]
        for j, (ax, img) in enumerate(zip(axes[i], maps)):
            if j < 2:
                ax.imshow(_pixels(img), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(img.detach().cpu().numpy(), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(heads[j], fontsize=7)
            if cos[j] is not None:
                ax.set_xlabel(f"cos {float(cos[j]):.2f}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_all(recs: Sequence[dict], repairs: Mapping[tuple, Repair], out: Path) -> list[Path]:
    """Every figure into ``out``; returns the paths written."""
    paths = [out / "accuracy_vs_eps.png"]
    accuracy_vs_eps(recs, paths[0])
    if accuracy_over_iterations(recs, out / "accuracy_over_iterations.png"):
        paths.append(out / "accuracy_over_iterations.png")
    for (m, r, a, e), rep in repairs.items():
        p = out / f"repair_{m}_{r}_{a}_eps{e:g}.png".replace(" ", "_").replace("/", "_")
        repair_strip(rep, f"{m} ({r}): {a} attack, ε={e:g}; cos = cosine similarity to "
                          f"f(clean) at level 0", p)
        paths.append(p)
    return paths
