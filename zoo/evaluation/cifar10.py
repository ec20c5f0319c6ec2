"""The seed's CIFAR-10 table (original-cnnf.md §D, E.1): ``dgm eval --table cifar10``.

Rows: the CNN, CNN-F scored on the "last" readout and on "avg". Columns, all at L∞ ε = 8/255
([0, 1] pixel units) on one seeded test subset:

* clean;
* PGD first / e2e: PGD-7, step 2/255, uniform random start; "first" follows the gradient of
  the plain feedforward pass, "e2e" that of the *scored* readout through every cycle (unlike
  the original, "avg" is attacked on the averaged logits, F.5). Per image the final or the
  best iterate, whichever the scored readout gets wrong (``runner.attack_inputs``);
* SPSA first / e2e: the gradient-free attack on the same two targets (7 Adam steps of lr 0.01,
  δ = 0.01, 128 samples, zero start, CE), final or best iterate as for PGD;
* transfer: PGD-7 crafted on the CNN's own pass, scored by the CNN-F readout ("—" for the CNN);
* min: the smallest accuracy over the attack columns, as in the seed table. The JSONL also
  gives ``worst_case``: the fraction of images that survive every attack of the row, each
  cell's per-image outcomes (``correct``, 0/1 in subset order), and for the CNN-F rows the
  exact McNemar test of their per-image worst case against the CNN's (``vs_cnn``: ``b01`` =
  images only the CNN-F keeps, ``b10`` = only the CNN keeps, two-sided ``p_value``).

For the CNN the first and e2e targets are the same function, so one attack fills both columns.
Every cell carries a 95 % Wilson interval. Outputs: ``table.jsonl`` (one record per cell, then
one per row) and ``table.md``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from zoo.attacks import accuracy_with_interval, mcnemar_exact, pixel_to_input, spsa
from zoo.models.cnnf import CNNF

from .runner import EvalConfig, attack_inputs, cell_seed, score, wrong_iterate
from .targets import build_target

COLUMNS = ("clean", "PGD first", "PGD e2e", "SPSA first", "SPSA e2e", "transfer", "min")


@dataclass(frozen=True)
class TableConfig:
    """Attack settings of the table (budgets and steps in [0, 1] pixel units)."""
    eps: float = 8 / 255
    pgd_steps: int = 7
    pgd_step: float = 2 / 255
    spsa_steps: int = 7
    spsa_samples: int = 128
    spsa_delta: float = 0.01
    spsa_lr: float = 0.01
    batch_size: int = 64
    seed: int = 0

    def pgd_config(self) -> EvalConfig:
        return EvalConfig(eps=(self.eps,), attacks=("first",), steps=self.pgd_steps,
                          step_scale=self.pgd_step * self.pgd_steps / self.eps,
                          batch_size=self.batch_size, seed=self.seed)


def _spsa_table_inputs(net: CNNF, target: str, readout: str, x: Tensor, y: Tensor,
                       config: TableConfig, seed: int) -> Tensor:
    """SPSA on ``target``; per image the final or best iterate the scored readout gets wrong."""
    loss_fn, predict = build_target(net, target, readout)
    res = spsa(loss_fn, x, y, eps=pixel_to_input(config.eps), steps=config.spsa_steps,
               delta=config.spsa_delta, lr=config.spsa_lr, nb_sample=config.spsa_samples,
               predict=predict, generator=torch.Generator().manual_seed(seed))
    return wrong_iterate(net, readout, y, res.x_final, res.x_best)


def seed_table(cnn: CNNF, cnnf: CNNF, x: Tensor, y: Tensor, config: TableConfig = TableConfig(),
               log: Callable[[str], None] = print) -> list[dict]:
    """The three rows of the table on ``(x (N, 3, 32, 32) in [−1, 1], y (N,))``.

    Returns one dict per row: ``model``, ``readout``, ``cells`` (column → accuracy record with
    ``acc``, ``lo``, ``hi``, ``n``, ``seconds``, per-image ``correct``; None where not
    applicable), ``min``, ``worst_case`` (with its per-image ``correct``) and, on the CNN-F
    rows, ``vs_cnn`` (exact McNemar of the two per-image worst cases).
    """
    if not cnn.is_cnn:
        raise ValueError(f"cnn must have cycles=0 (the CNN baseline), got {cnn.cycles}")
    for net in (cnn, cnnf):
        net.eval()
    pgd_cfg = config.pgd_config()
    batches = [slice(i, i + config.batch_size) for i in range(0, len(y), config.batch_size)]

    def run(name: str, fn: Callable[[slice, int], Tensor], net: CNNF, readout: str):
        """One cell: ``fn(batch slice, seed)`` gives the inputs the readout is scored on."""
        start, correct = time.perf_counter(), []
        for i, s in enumerate(batches):
            correct.append(score(net, readout, fn(s, cell_seed(config.seed, name, i)), y[s])[0])
        correct = torch.cat(correct)
        cell = {**accuracy_with_interval(correct), "seconds": round(time.perf_counter() - start, 1),
                "correct": correct.int().tolist()}
        log(f"{name:>24}: {100 * cell['acc']:.2f}% ({cell['seconds']:.0f}s)")
        return cell, correct

    transfer_x = torch.cat([attack_inputs(cnn, "first", "last", x[s], y[s], config.eps, pgd_cfg,
                                          cell_seed(config.seed, "transfer", i))
                            for i, s in enumerate(batches)])
    rows = []
    for label, net, r in (("CNN", cnn, "last"), ("CNN-F (last)", cnnf, "last"),
                          ("CNN-F (avg)", cnnf, "avg")):
        plan = {"clean": lambda s, sd: x[s]}
        for t in ("first",) if net.is_cnn else ("first", "e2e"):
            plan[f"PGD {t}"] = lambda s, sd, t=t, net=net, r=r: attack_inputs(
                net, t, r, x[s], y[s], config.eps, pgd_cfg, sd)
            plan[f"SPSA {t}"] = lambda s, sd, t=t, net=net, r=r: _spsa_table_inputs(
                net, t, r, x[s], y[s], config, sd)
        if not net.is_cnn:
            plan["transfer"] = lambda s, sd: transfer_x[s]
        cells, outcomes = {}, {}
        for col, fn in plan.items():
            cells[col], outcomes[col] = run(f"{label} {col}", fn, net, r)
        for kind in ("PGD", "SPSA"):  # a CNN's first and e2e targets are the same function
            cells.setdefault(f"{kind} e2e", cells[f"{kind} first"])
        cells.setdefault("transfer", None)
        attacked = [c for c in COLUMNS[1:-1] if cells[c] is not None]
        survive = torch.stack([outcomes[c] for c in outcomes if c != "clean"]).all(0)
        row = {"model": label, "readout": r, "cells": cells,
               "min": min(cells[c]["acc"] for c in attacked),
               "worst_case": {**accuracy_with_interval(survive), "correct": survive.int().tolist()}}
        if not net.is_cnn:
            row["vs_cnn"] = mcnemar_exact(cnn_survive, survive)
        else:
            cnn_survive = survive
        rows.append(row)
    return rows


def markdown(rows: list[dict], header: str = "") -> str:
    """The table in the seed's layout, accuracies in % with 95 % Wilson intervals."""
    fmt = lambda c: "—" if c is None else (  # noqa: E731
        f"{100 * c['acc']:.1f} [{100 * c['lo']:.1f}, {100 * c['hi']:.1f}]")
    lines = ([header, ""] if header else []) + [
        "| model | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for r in rows:
        cells = [fmt(r["cells"].get(c)) for c in COLUMNS[:-1]] + [f"{100 * r['min']:.1f}"]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    tests = [f"{r['model']}: worst case {100 * r['worst_case']['acc']:.1f} % vs the CNN's "
             f"{100 * rows[0]['worst_case']['acc']:.1f} %, only CNN-F {r['vs_cnn']['b01']} / only "
             f"CNN {r['vs_cnn']['b10']} images, exact McNemar p = {r['vs_cnn']['p_value']:.3g}"
             for r in rows if "vs_cnn" in r]
    return "\n".join(lines + ([""] + tests if tests else [])) + "\n"


def write_table(rows: list[dict], out: str | Path, config: TableConfig, meta: dict) -> str:
    """Write ``table.jsonl`` and ``table.md`` under ``out``; returns the markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = rows[0]["cells"]["clean"]["n"]
    header = (f"CIFAR-10, {n} test images (seed {config.seed}); "
              f"L∞ ε = {255 * config.eps:g}/255; PGD-{config.pgd_steps} step {255 * config.pgd_step:g}/255; SPSA "
              f"{config.spsa_steps} steps × {config.spsa_samples} samples; 95 % Wilson intervals")
    with (out / "table.jsonl").open("w") as f:
        f.write(json.dumps({"event": "config", **asdict(config), **meta}) + "\n")
        for r in rows:
            for col, cell in r["cells"].items():
                if cell is not None:
                    f.write(json.dumps({"event": "cell", "model": r["model"],
                                        "readout": r["readout"], "column": col, **cell}) + "\n")
            f.write(json.dumps({"event": "row", **{k: v for k, v in r.items() if k != "cells"}})
                    + "\n")
    text = markdown(rows, header)
    (out / "table.md").write_text(text)
    return text
