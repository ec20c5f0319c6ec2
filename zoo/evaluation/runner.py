"""Run a robustness evaluation: every model × readout × attack × ε on one fixed, seeded subset.

For every image the attacked input is the strongest of PGD's final and best iterates under the
*scored* readout (the best iterate is tracked on the attacked function, see ``targets``), so an
image counts as robust only if both iterates are classified correctly. Besides the scored
readout, the class of every pass 0..C is recorded on that input (accuracy over feedback
iterations). Budgets are in [0, 1] pixel units (``eps``) and converted to input units (×2 for
[-1, 1]); the PGD step is ``step_scale · ε / steps`` with a uniform random start.

"apgd-sum" and "apgd-dlr" are the strong attacks (``STRONG``): APGD (``zoo.attacks.apgd``:
momentum and a self-halving step from 2ε) on the sum over every pass (the "e2e-sum" target) of
the cross-entropy ("apgd-sum") or of the DLR loss ("apgd-dlr", AutoAttack's second attack, for a
CNN exactly APGD-DLR), with ``apgd_steps`` iterations and ``apgd_restarts`` restarts (each on the
images no earlier restart broke). DLR is scale-invariant: where the softmax saturates (huge
logits, cross-entropy gradients exactly 0 in float32) it still has a gradient.

Robust accuracy follows AutoAttack's convention: an image counts as robust under an
attack only if the scored readout is also correct on the clean image.

With ``cascade`` (AutoAttack's convention), the listed attacks run only on the images that every
attack computed before them at the same (model, readout, ε) left correctly classified; an image
skipped that way keeps the input and the per-pass classes of the first earlier attack that broke
it. Such a column is the worst case so far, and the ``min`` column is the same per-image worst
case at a fraction of the cost (only the random starts differ: they are drawn for the images
attacked).

A transfer attack reuses the adversarial inputs crafted on the ``transfer_from`` model (a CNN)
and scores them on every other model. Random starts are seeded per (seed, model, readout,
attack, ε, batch), so results do not depend on the order in which cells are computed.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from zoo.attacks import apgd, pgd, pixel_to_input
from zoo.attacks.common import select
from zoo.models.cnnf import CNNF

from .targets import TARGETS, build_target

# APGD attacks -> (the target whose loss they maximise, the loss of its logits)
STRONG = {"apgd-sum": ("e2e-sum", "ce"), "apgd-dlr": ("e2e-sum", "dlr")}
ATTACKS = TARGETS + tuple(STRONG) + ("transfer",)


@dataclass(frozen=True)
class EvalConfig:
    """What to run.

    Attributes:
        eps: budgets in [0, 1] pixel units (0 = clean accuracy).
        attacks: names from ``ATTACKS`` ("transfer" needs ``transfer_from``).
        readouts: scored readouts of CNN-F models ("last", "avg"); a CNN has only "last".
        steps, step_scale, restarts: PGD-``steps`` with step ``step_scale·ε/steps``.
        apgd_steps, apgd_restarts: iterations and restarts of the APGD attacks (``STRONG``).
        batch_size: images per attack batch.
        seed: seeds the random starts (and, via ``fixed_subset``, the subset).
        transfer_from: name of the source model of the transfer attack.
        cascade: attacks run only on the images still correct under the attacks before them
            (see the module docstring); never the first attack, which crafts the transfer.
    """
    eps: tuple[float, ...] = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1)
    attacks: tuple[str, ...] = TARGETS
    readouts: tuple[str, ...] = ("last", "avg")
    steps: int = 40
    step_scale: float = 2.5
    restarts: int = 1
    apgd_steps: int = 100
    apgd_restarts: int = 2
    batch_size: int = 64
    seed: int = 0
    transfer_from: str | None = None
    cascade: tuple[str, ...] = ()

    def __post_init__(self):
        bad = [a for a in self.attacks if a not in ATTACKS]
        if bad:
            raise ValueError(f"attacks must be among {ATTACKS}, got {bad}")
        if any(r not in ("last", "avg") for r in self.readouts) or not self.readouts:
            raise ValueError(f"readouts must be a non-empty subset of ('last', 'avg'), "
                             f"got {self.readouts}")
        if any(e < 0 for e in self.eps) or not self.eps:
            raise ValueError(f"eps must be a non-empty list of budgets >= 0, got {self.eps}")
        if min(self.steps, self.restarts, self.apgd_steps, self.apgd_restarts,
               self.batch_size) < 1:
            raise ValueError("steps, restarts, apgd_steps, apgd_restarts and batch_size must "
                             "be >= 1")
        if any(a not in self.attacks[1:] for a in self.cascade):
            raise ValueError(f"cascade must name attacks after the first of {self.attacks}, "
                             f"got {self.cascade}")
        if "transfer" in self.attacks and self.transfer_from is None:
            raise ValueError("attack 'transfer' needs transfer_from (the source model's name)")

    def step_size(self, eps_pixel: float, steps: int | None = None) -> float:
        """PGD step in input units."""
        return self.step_scale * pixel_to_input(eps_pixel) / (steps or self.steps)


@dataclass
class Cell:
    """One (model, readout, attack, ε) result on the subset.

    Attributes:
        correct: (N,) bool, scored readout correct on the attacked input.
        pass_correct: (P, N) bool, class of each pass 0..C correct on the attacked input.
        x_adv: the attacked inputs of the images ``keep`` of ``evaluate`` (figures).
        seconds: wall time spent.
        attacked: (N,) bool, the images this attack ran on (all but those a cascade skipped).
        cascade: the attacks whose worst case this cell holds (itself and every earlier attack
            of its row and ε) when it ran as a cascade, else empty.
    """
    correct: Tensor
    pass_correct: Tensor
    x_adv: Tensor
    seconds: float
    attacked: Tensor | None = None
    cascade: tuple[str, ...] = ()


@dataclass
class Evaluation:
    """All cells, keyed ``(model, readout, attack, eps)``; attack "clean" holds ε = 0;
    ``clean`` holds, per (model, readout) row, the (N,) bool correctness on the clean images
    (every cell's ``correct`` implies it)."""
    config: EvalConfig
    labels: Tensor
    cells: dict[tuple[str, str, str, float], Cell] = field(default_factory=dict)
    clean: dict[tuple[str, str], Tensor] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys((m, r) for m, r, _, _ in self.cells))

    def attacks(self, model: str, readout: str) -> list[str]:
        return list(dict.fromkeys(a for m, r, a, _ in self.cells if (m, r) == (model, readout)))


def fixed_subset(n_total: int, n: int, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of ``n`` of ``n_total`` items, in increasing order
    (the same for every model and every run with this seed)."""
    if not 0 < n <= n_total:
        raise ValueError(f"n_examples must be in 1..{n_total}, got {n}")
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


def cell_seed(*parts) -> int:
    """A stable 31-bit seed from the parts of a cell's key."""
    return zlib.crc32(repr(parts).encode())


def model_rows(models: Mapping[str, CNNF], readouts: Sequence[str]) -> list[tuple[str, str]]:
    """(model, readout) rows: a CNN (cycles = 0) is scored on "last" only."""
    return [(m, r) for m, net in models.items() for r in (("last",) if net.is_cnn else readouts)]


def attack_inputs(net: CNNF, target: str, readout: str, x: Tensor, y: Tensor, eps: float,
                  config: EvalConfig, seed: int, steps: int | None = None,
                  restarts: int | None = None) -> Tensor:
    """PGD on ``target`` of ``net`` (APGD on its target for a ``STRONG`` attack); per image the
    final or best iterate, whichever the scored ``readout`` gets wrong (the best one when both
    or neither are wrong). ``steps`` / ``restarts`` override the configured ones. Returns
    (N, ...)."""
    generator = torch.Generator().manual_seed(seed)
    if target in STRONG:
        inner, loss = STRONG[target]
        loss_fn, predict = build_target(net, inner, readout, loss)
        res = apgd(loss_fn, x, y, eps=pixel_to_input(eps), steps=steps or config.apgd_steps,
                   restarts=restarts or config.apgd_restarts, predict=predict,
                   generator=generator)
    else:
        steps = config.steps if steps is None else steps
        loss_fn, predict = build_target(net, target, readout)
        res = pgd(loss_fn, x, y, eps=pixel_to_input(eps), step_size=config.step_size(eps, steps),
                  steps=steps, restarts=restarts or config.restarts, predict=predict,
                  generator=generator)
    return wrong_iterate(net, readout, y, res.x_final, res.x_best)


@torch.no_grad()
def wrong_iterate(net: CNNF, readout: str, y: Tensor, x_final: Tensor, x_best: Tensor
                  ) -> Tensor:
    """Per image the attack's final or best iterate, whichever the scored ``readout`` gets
    wrong (the best one when both or neither are wrong)."""
    best_ok = net(x_best, readout=readout).argmax(1) == y
    final_ok = net(x_final, readout=readout).argmax(1) == y
    return select(best_ok & ~final_ok, x_final, x_best)


@torch.no_grad()
def score(net: CNNF, readout: str, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(correct (N,), pass_correct (P, N))`` of ``net`` on ``x``."""
    passes = net.forward_passes(x)
    correct = net.readout_logits(passes, readout).argmax(1) == y
    return correct, torch.stack([p.argmax(1) == y for p in passes])


def _cost(net: CNNF, attack: str, eps: float, config: EvalConfig) -> float:
    """Rough cost of one batch in plain forward passes (for the ETA)."""
    full = net.cycles + 1
    if eps == 0 or attack == "transfer":
        return full
    per_step = 2 if attack == "first" or net.is_cnn else 3 * full
    if attack in STRONG:
        return config.apgd_steps * config.apgd_restarts * per_step + 2 * full
    return config.steps * config.restarts * per_step + 2 * full


def evaluate(models: Mapping[str, CNNF], x: Tensor, y: Tensor, config: EvalConfig, *,
             keep: int | Tensor = 8, progress: bool | None = None,
             log: Callable[[str], None] = print,
             done: Mapping[tuple, Cell] | None = None,
             on_cell: Callable[[tuple, Cell], None] | None = None) -> Evaluation:
    """Evaluate ``models`` on ``(x (N, C, H, W), y (N,))`` under ``config``.

    Cells are computed for each (model, readout) row: "clean" at ε = 0, then every attack at
    every ε > 0 (for a CNN the gradient targets coincide and are computed once). ``progress``:
    tqdm bar with ETA (None: only on a terminal). ``done``: cells already computed (a resumed
    run; taken as they are); ``on_cell(key, cell)``: called as each cell is computed (not for
    ``done`` or shared cells), e.g. to append it to disk. ``keep``: the positions whose
    attacked inputs the cells keep for figures (an int n: the first n). Returns the
    ``Evaluation``.
    """
    keep = torch.arange(min(keep, len(y))) if isinstance(keep, int) else keep
    if config.transfer_from is not None and config.transfer_from not in models:
        raise ValueError(f"transfer_from={config.transfer_from!r} is not among the models "
                         f"{list(models)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}")
    for net in models.values():
        net.eval()
    order = sorted(models, key=lambda m: m != config.transfer_from)  # the source first
    rows = model_rows({m: models[m] for m in order}, config.readouts)
    plan = [(m, r, a, e) for m, r in rows for e in config.eps
            for a in (("clean",) if e == 0 else config.attacks)
            if not (a == "transfer" and m == config.transfer_from)]
    batches = [slice(i, i + config.batch_size) for i in range(0, len(y), config.batch_size)]
    total = sum(_cost(models[m], a, e, config) for m, _, a, e in plan) * len(batches)
    out = Evaluation(config, y)
    source = next((a for a in config.attacks if a in TARGETS), None)  # crafts the transfer
    if "transfer" in config.attacks and source is None:
        raise ValueError("attack 'transfer' needs a gradient attack among the attacks")
    for m, r in rows:
        with torch.no_grad():
            out.clean[(m, r)] = torch.cat([models[m](x[s], readout=r).argmax(1) == y[s]
                                           for s in batches])
    bar = tqdm(total=total, disable=None if progress is None else not progress, unit="pass",
               smoothing=0.1, dynamic_ncols=True)
    try:
        for m, r, a, e in plan:
            net, start = models[m], time.perf_counter()
            bar.set_description(f"{m}/{r} {a} eps={e:g}")
            shared = _shared_cell(out, models, m, r, a, e, source)
            if shared is None and done and (m, r, a, e) in done:
                shared = done[(m, r, a, e)]
            if shared is not None:
                out.cells[(m, r, a, e)] = shared
                bar.update(_cost(net, a, e, config) * len(batches))
                continue
            earlier = {aa: c for (mm, rr, aa, ee), c in out.cells.items()
                       if (mm, rr, ee) == (m, r, e)} if a in config.cascade else {}
            alive = out.clean[(m, r)].clone() if earlier else torch.ones(len(y), dtype=torch.bool)
            for c in earlier.values():
                alive &= c.correct
            parts = []
            for i, s in enumerate(batches):
                xb, yb = x[s], y[s]
                if a == "clean":
                    xa = xb
                elif a == "transfer":
                    xa = out.cells[(config.transfer_from, "last", source, e)].x_adv[s]
                elif not alive[s].any():
                    xa = xb
                else:
                    run = alive[s].nonzero().squeeze(1)
                    xa = xb.clone()
                    xa[run] = attack_inputs(net, a, r, xb[run], yb[run], e, config,
                                            cell_seed(config.seed, m, r, a, e, i))
                parts.append((xa,) + score(net, r, xa, yb))
                bar.update(_cost(net, a, e, config) * float(alive[s].float().mean()))
            xa = torch.cat([p[0] for p in parts])
            correct = torch.cat([p[1] for p in parts]) & out.clean[(m, r)]
            cell = Cell(correct, torch.cat([p[2] for p in parts], 1),
                        xa if (m, a) == (config.transfer_from, source) else xa[keep],
                        time.perf_counter() - start, alive,
                        tuple(earlier) + (a,) if earlier else ())
            if earlier:
                _inherit_broken(cell, list(earlier.values()), keep)
            out.cells[(m, r, a, e)] = cell
            if on_cell is not None:
                on_cell((m, r, a, e), cell)
            ran = f", on {int(alive.sum())} survivors" if earlier else ""
            log(f"{m:>10} {r:>4} {a:>8} eps={e:<5g} acc={cell.correct.float().mean():.3f} "
                f"({cell.seconds:.0f}s{ran})")
    finally:
        bar.close()
    for (m, r, a, e), cell in out.cells.items():  # keep only the figures' inputs
        if len(cell.x_adv) == len(y):   # (cells read back from disk hold only those)
            cell.x_adv = cell.x_adv[keep]
    return out


def _positions(x_adv: Tensor, n: int, keep: Tensor) -> Tensor:
    """The subset positions of a cell's ``x_adv`` rows: all n (the transfer source) or
    ``keep``."""
    return torch.arange(n) if len(x_adv) == n else keep


def _inherit_broken(cell: Cell, earlier: Sequence[Cell], keep: Tensor) -> None:
    """Give every image a cascade skipped the outcome of the first earlier attack that broke
    it: scored readout wrong, that attack's per-pass classes and (for figures) its input.
    A cell's ``x_adv`` rows are the positions ``keep``, or all N (the transfer source)."""
    n = len(cell.correct)
    todo = ~cell.attacked
    cell.correct[todo] = False
    rows = _positions(cell.x_adv, n, keep)
    for c in earlier:
        take = todo & ~c.correct
        cell.pass_correct[:, take] = c.pass_correct[:, take]
        row_of = torch.full((n,), -1, dtype=torch.long)   # position -> row of c.x_adv
        row_of[_positions(c.x_adv, n, keep)] = torch.arange(len(c.x_adv))
        sel = take[rows] & (row_of[rows] >= 0)
        cell.x_adv[sel] = c.x_adv[row_of[rows][sel]]
        todo &= ~take


def _shared_cell(out: Evaluation, models: Mapping[str, CNNF], m: str, r: str, a: str,
                 e: float, source: str | None) -> Cell | None:
    """For a CNN every gradient target is the plain pass: reuse the cell of ``source``."""
    if models[m].is_cnn and a in TARGETS and a != source:
        return out.cells.get((m, r, source, e))
    return None
