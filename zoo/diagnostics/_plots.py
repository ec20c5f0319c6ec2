"""Figures of the likelihood diagnostics (matplotlib, Agg backend, PNG files).

* ``plot_log_joint``: Δ log joint (from the initial state) vs step, median and 10–90 % band per
  variant, one panel per condition. The x axis is in cycles: the k-th of the m steps of cycle c
  sits at c − 1 + k/m, so variants with different steps per cycle line up.
* ``plot_terms``: per-term contributions — median change of every term of the log joint
  (class prior, each layer's switch term, render, Gaussian, observation) vs step.
* ``plot_units``: switch/pool-position entries changed by each step (distance to a fixed point).
* ``plot_accuracy``: accuracy of every pass (0 = the plain CNN) per variant and condition.
* ``plot_repair``: image-repair strips — input, x̃, then the rendering g_0 of each cycle.
* ``plot_templates``: class templates (model.render of Aᵀe_k with the plain gates of a real image
  of class k) and ancestral samples of model B (``dgm.program``).

Level-0 features with several channels are shown as their channel mean (CNN-F's ``ind`` > 0
puts level 0 after the first conv blocks); one-channel levels are shown as images.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from backends import get_backend
from dgm.handlers import seed as seeded
from dgm.program import generative_program

from zoo.plotting import pyplot

from ._records import StepRecord, to_numpy


def _curves(steps: Sequence[StepRecord], value, relative: bool = True
            ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(variant, condition) → (x positions in cycles (S,), values (images, S)), each image's
    values minus its initial value (``relative``); runs that stopped at a fixed point are
    carried forward (their value, or 0 when not ``relative``: nothing changes any more)."""
    runs: dict[tuple[str, str], dict[int, list[StepRecord]]] = {}
    for s in steps:
        runs.setdefault((s.variant, s.condition), {}).setdefault(s.image, []).append(s)
    out = {}
    for key, by_image in runs.items():
        longest = max(by_image.values(), key=len)
        pos = _positions(sorted(longest, key=lambda r: r.step))
        rows = []
        for recs in by_image.values():
            recs = sorted(recs, key=lambda r: r.step)
            v = np.array([value(r) for r in recs], dtype=float)
            v = v - v[0] if relative else v
            rows.append(np.concatenate([v, np.full(len(pos) - len(v), v[-1] if relative
                                                   else 0.0)]))
        out[key] = (pos, np.stack(rows))
    return out


def _positions(recs: Sequence[StepRecord]) -> np.ndarray:
    counts: dict[int, int] = {}
    for r in recs:
        counts[r.cycle] = counts.get(r.cycle, 0) + 1
    seen: dict[int, int] = {}
    pos = []
    for r in recs:
        seen[r.cycle] = seen.get(r.cycle, 0) + 1
        pos.append(0.0 if r.cycle == 0 else r.cycle - 1 + seen[r.cycle] / counts[r.cycle])
    return np.array(pos)


def _band(ax, pos, values, label):
    lo, med, hi = np.quantile(values, [0.1, 0.5, 0.9], axis=0)
    line, = ax.plot(pos, med, label=label, marker=".", markersize=3)
    ax.fill_between(pos, lo, hi, alpha=0.2, color=line.get_color())


def _band_panels(curves, path, title: str, ylabel: str, zero_line: bool) -> None:
    """One panel per condition with each variant's median and 10–90 % band over cycles."""
    plt = pyplot()
    conditions = list(dict.fromkeys(c for _, c in curves))
    fig, axes = plt.subplots(1, len(conditions), figsize=(5.5 * len(conditions), 4),
                             constrained_layout=True, squeeze=False)
    for ax, cond in zip(axes[0], conditions):
        for (variant, c), (pos, vals) in curves.items():
            if c == cond:
                _band(ax, pos, vals, variant)
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set(title=f"{cond}: {title}", xlabel="cycle", ylabel=ylabel)
        if zero_line:
            ax.axhline(0, color="k", lw=0.5)
        ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_log_joint(steps: Sequence[StepRecord], path: str | os.PathLike) -> None:
    """Δ log p_G vs step (median, 10–90 % band), variants overlaid, one panel per condition."""
    _band_panels(_curves(steps, lambda r: r.log_joint), path, "log joint − initial",
                 "Δ log p_G", zero_line=True)


def plot_units(steps: Sequence[StepRecord], path: str | os.PathLike) -> None:
    """Switch and pool-position entries changed by each step (median, 10–90 % band), per
    variant, one panel per condition: how far each cycle still is from a fixed point."""
    _band_panels(_curves(steps, lambda r: r.units_changed, relative=False), path,
                 "z/t entries changed per step", "units", zero_line=False)


def plot_terms(steps: Sequence[StepRecord], path: str | os.PathLike) -> None:
    """Median change of every log-joint term vs step; rows = variants, columns = conditions."""
    plt = pyplot()
    names = list(steps[0].terms) if steps else []
    per_term = {name: _curves(steps, lambda r, n=name: r.terms[n]) for name in names}
    keys = list(next(iter(per_term.values()))) if per_term else []
    variants = list(dict.fromkeys(v for v, _ in keys))
    conditions = list(dict.fromkeys(c for _, c in keys))
    fig, axes = plt.subplots(len(variants), len(conditions), squeeze=False, sharex=True,
                             figsize=(5.5 * len(conditions), 3.6 * len(variants)),
                             constrained_layout=True)
    for i, v in enumerate(variants):
        for j, c in enumerate(conditions):
            ax = axes[i][j]
            for name in names:
                pos, vals = per_term[name][(v, c)]
                ax.plot(pos, np.median(vals, 0), label=name, marker=".", markersize=3)
            ax.set_yscale("symlog", linthresh=1.0)
            ax.set(title=f"{v} / {c}: term − initial (median)", xlabel="cycle")
            ax.axhline(0, color="k", lw=0.5)
    if names:
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center",
                   ncols=min(len(names), 6), fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_accuracy(summary: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> None:
    """Accuracy of every pass (0 = plain CNN) for each variant × condition."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    for row in summary:
        acc = row["accuracy_by_pass"]
        ax.plot(range(len(acc)), acc, marker="o", label=f"{row['variant']} / {row['condition']}",
                linestyle="-" if row["condition"] == "clean" else "--")
    ax.set(xlabel="pass (0 = plain CNN)", ylabel="accuracy", ylim=(0, 1),
           title="accuracy vs iteration")
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def level0_image(a: np.ndarray) -> np.ndarray:
    """A 2-D view of one level-0 array: the image itself (1 channel), the channel mean
    (C, H, W), or a flat vector folded into rows."""
    a = np.asarray(a)
    if a.ndim == 3:
        return a[0] if a.shape[0] == 1 else a.mean(0)
    flat = a.reshape(-1)
    side = int(np.ceil(np.sqrt(flat.size)))
    return np.concatenate([flat, np.zeros(side * side - flat.size)]).reshape(side, side)


def plot_repair(example, title: str, path: str | os.PathLike) -> None:
    """Rows = images; columns = input, x̃, rendering g_0 of every cycle, final h."""
    plt = pyplot()
    n = len(example.labels)
    cols = [("input", example.x)] + [("x̃", example.x_obs)] + \
        [(f"g0 c{c + 1}", g) for c, g in enumerate(example.renderings)] + \
        ([("h final", example.h[-1])] if example.h else [])
    fig, axes = plt.subplots(n, len(cols), figsize=(1.4 * len(cols), 1.5 * n + 0.6),
                             squeeze=False, constrained_layout=True)
    for i in range(n):
        for j, (name, arr) in enumerate(cols):
            ax = axes[i][j]
            ax.imshow(level0_image(arr[i]), cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
        preds = " ".join(str(int(p)) for p in example.preds[:, i])
        axes[i][0].set_ylabel(f"y={int(example.labels[i])}\n{preds}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def class_templates(model, params, x, labels):
    """g_0 of Aᵀe_k for every class k, rendered with the plain-pass gates (and frozen norm
    scales) of the first image of class k in ``x`` (of any class when k is absent).

    Returns (K, *level0) numpy and the state of those images (for sampling)."""
    labels = to_numpy(labels)
    idx = [int(np.flatnonzero(labels == k)[0]) if (labels == k).any() else 0
           for k in range(model.classes)]
    xs = x[idx]
    state, _ = model.plain_state(params, model.encode(params, xs))
    y = get_backend(state.y).asarray(np.arange(model.classes), like=state.y)
    g0, _ = model.render(params, state.replace(y=y))
    return to_numpy(g0), state


def ancestral_samples(model, params, state, seed: int = 0):
    """Ancestral draws of model B (``dgm.program``), one per row of ``state`` (whose frozen
    norm scales they use). Returns the rendering g_0 of each drawn (y, z, t) — the mean of the
    drawn h, whose σ² noise would hide it — (n, *level0) and the drawn classes y (n,)."""
    with seeded(seed=seed):
        drawn, _ = generative_program(model, params, state.batch_size, normalisation="B",
                                      norm_scales=state.norm_scales)
    g0, _ = model.render(params, drawn)
    return to_numpy(g0), to_numpy(drawn.y)


def plot_templates(model, params, x, labels, path: str | os.PathLike, class_names=None,
                   seed: int = 0) -> str:
    """Class templates (top row) and ancestral draws of model B (bottom row, g_0 of each draw).
    Returns a one-line note of what was drawn."""
    plt = pyplot()
    templates, state = class_templates(model, params, x, labels)
    drawn, drawn_y = ancestral_samples(model, params, state, seed)
    k = model.classes
    fig, axes = plt.subplots(2, k, figsize=(1.3 * k, 3.7), squeeze=False,
                             constrained_layout=True)
    names = list(class_names) if class_names else [str(c) for c in range(k)]
    rows = [(templates, names), (drawn, [f"draw y={int(v)}" for v in drawn_y])]
    for row, (images, titles) in enumerate(rows):
        for c in range(k):
            ax = axes[row][c]
            ax.imshow(level0_image(images[c]), cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(titles[c], fontsize=7)
    axes[0][0].set_ylabel("template", fontsize=8)
    axes[1][0].set_ylabel("model B draw: g0", fontsize=8)
    note = ("class templates (plain gates of a real image per class) and ancestral draws of "
            "model B (dgm.program; shown: g0, the mean of h)")
    fig.suptitle(note, fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return note
